// turnout's web UI: zoom and pan of the application's graph (an SVG the server lays out). The
// wheel zooms around the pointer, a drag pans, a double click or "fit" resets; the buttons do
// the same for a keyboard. The view is kept when a step click swaps the graph in again.
(function () {
  let kept = null; // [page path, viewBox] of the last view a user chose
  const view = (svg) => svg.getAttribute("viewBox").split(" ").map(Number);
  const place = (svg, box) => {
    svg.setAttribute("viewBox", box.map((n) => n.toFixed(1)).join(" "));
    kept = [location.pathname.split("/steps/")[0], svg.getAttribute("viewBox")];
  };
  function zoom(svg, factor, cx, cy) {
    const [x, y, w, h] = view(svg);
    const full = svg.dataset.view.split(" ").map(Number);
    const nw = Math.min(Math.max(w * factor, full[2] / 8), full[2] * 4);
    const k = nw / w;
    place(svg, [cx - (cx - x) * k, cy - (cy - y) * k, nw, h * k]);
  }
  function point(svg, event) {
    const [x, y, w, h] = view(svg);
    const r = svg.getBoundingClientRect();
    return [x + ((event.clientX - r.left) / r.width) * w, y + ((event.clientY - r.top) / r.height) * h];
  }
  function attach(svg) {
    if (!svg || svg.tagName.toLowerCase() !== "svg" || svg.dataset.zoomable) return;
    svg.dataset.zoomable = "1";
    if (kept && kept[0] === location.pathname.split("/steps/")[0]) svg.setAttribute("viewBox", kept[1]);
    let drag = null;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [cx, cy] = point(svg, e);
      zoom(svg, e.deltaY > 0 ? 1.15 : 1 / 1.15, cx, cy);
    }, { passive: false });
    svg.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, box: view(svg), moved: false };
    });
    svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) svg.setPointerCapture(e.pointerId);
      drag.moved = true;
      const r = svg.getBoundingClientRect(), [x, y, w, h] = drag.box;
      place(svg, [x - (dx / r.width) * w, y - (dy / r.height) * h, w, h]);
    });
    svg.addEventListener("pointerup", () => { if (drag && !drag.moved) drag = null; });
    // A drag that ends on an action is a pan, not a click on it.
    svg.addEventListener("click", (e) => {
      if (drag && drag.moved) e.preventDefault();
      drag = null;
    }, true);
    svg.addEventListener("dblclick", () => place(svg, svg.dataset.view.split(" ").map(Number)));
  }
  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-graph-zoom]");
    const svg = document.getElementById("graph");
    if (!button || !svg || !svg.dataset.view) return;
    const how = button.dataset.graphZoom;
    if (how === "fit") return place(svg, svg.dataset.view.split(" ").map(Number));
    const [x, y, w, h] = view(svg);
    zoom(svg, how === "in" ? 1 / 1.3 : 1.3, x + w / 2, y + h / 2);
  });
  const scan = () => attach(document.getElementById("graph"));
  document.addEventListener("DOMContentLoaded", scan);
  document.addEventListener("htmx:afterSettle", scan);
})();
