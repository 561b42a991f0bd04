/* Image page: draw the overlay from data-analysis, wire the layer toggles, load similar images. */
(function () {
  "use strict";
  var PX = window.PX;

  function loadSimilar(sha) {
    var strip = document.getElementById("similar");
    if (!strip) return;
    PX.getJSON("/v1/images/" + sha + "/similar?k=12").then(function (res) {
      if (!res.ok || !res.data || !Array.isArray(res.data.items)) {
        PX.unavailable(strip, "Similar images", res);
        return;
      }
      PX.clear(strip);
      var items = res.data.items.filter(function (it) { return it.sha256 !== sha; });
      if (!items.length) { strip.appendChild(PX.el("span", { class: "muted" }, "No similar images.")); return; }
      items.forEach(function (it) {
        var name = String(it.path || it.sha256).split(/[\\/]/).pop();
        strip.appendChild(PX.el("a", { href: "/images/" + it.sha256, title: it.path, class: "similar-item" },
          PX.el("img", { loading: "lazy", src: "/v1/images/" + it.sha256 + "/thumb?size=256", alt: it.path }),
          PX.el("span", null, name + " · " + PX.fmtNum(it.score, 3))));
      });
    });
  }

  function init() {
    var page = document.getElementById("image-page");
    if (!page) return;
    var analysis;
    try { analysis = JSON.parse(page.getAttribute("data-analysis")); } catch (e) { analysis = null; }
    var svgEl = document.getElementById("overlay");
    if (analysis && svgEl) {
      var drawnWidth = 0;
      var draw = function () {
        drawnWidth = svgEl.getBoundingClientRect().width;
        PX.drawOverlay(svgEl, analysis);
        PX.wireToggles(document.getElementById("toggles"), svgEl);
      };
      draw();
      var timer = null;
      window.addEventListener("resize", function () {  // labels keep their screen size
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          if (Math.abs(svgEl.getBoundingClientRect().width - drawnWidth) > 1) draw();
        }, 150);
      });
    }
    loadSimilar(page.getAttribute("data-sha"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
