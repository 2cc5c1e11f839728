// turnout's web UI: the selected row of the steps table follows the step panel (a step link
// swaps the panel alone; live mode adds rows). No inline script: the CSP forbids it.
function markSelectedStep() {
  const panel = document.getElementById("step-panel");
  if (!panel) return;
  const seq = panel.dataset.seq;
  for (const row of document.querySelectorAll("#steps tr.selected")) {
    if (row.id !== `step-${seq}`) {
      row.classList.remove("selected");
      row.removeAttribute("aria-current");
    }
  }
  const row = seq === undefined ? null : document.getElementById(`step-${seq}`);
  if (row) {
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
  }
}
document.addEventListener("htmx:afterSettle", markSelectedStep);
