// The timeline tab's wheel zoom: zooming changes the page's start/end query parameters (each
// zoom is a URL, so Back and Forward walk them); the server draws the bars.
(function () {
  "use strict";
  function setup() {
    var svg = document.getElementById("timeline-lanes");
    if (!svg || svg.dataset.wheel) return;
    svg.dataset.wheel = "1";
    var pending = null;
    svg.addEventListener("wheel", function (event) {
      event.preventDefault();
      var box = svg.getBoundingClientRect();
      var barsLeft = box.left + box.width * 0.30, barsWidth = box.width * 0.695;
      var at = Math.min(Math.max((event.clientX - barsLeft) / barsWidth, 0), 1);
      var start = parseFloat(svg.dataset.start), end = parseFloat(svg.dataset.end);
      var span = end - start, factor = event.deltaY < 0 ? 0.5 : 2;
      var next = Math.min(Math.max(span * factor, 0.001), 1);
      var centre = start + at * span;
      var left = Math.min(Math.max(centre - at * next, 0), 1 - next);
      var url = new URL(window.location.href);
      url.searchParams.set("start", left.toFixed(4));
      url.searchParams.set("end", (left + next).toFixed(4));
      if (pending) window.clearTimeout(pending);
      pending = window.setTimeout(function () { window.location.assign(url.toString()); }, 120);
    }, { passive: false });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
