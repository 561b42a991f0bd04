/* Review page: one doubtful image at a time from GET /v1/review/next; decisions go to
   POST /v1/review/{sha} (with the CSRF header). Keys: a accept, r reject, l relabel,
   f fix box (drag on the image), s skip, ? help, Esc cancel. */
(function () {
  "use strict";
  var PX = window.PX;
  var state = { item: null, mode: null, boxes: [], skipped: [], busy: false, drag: null };
  var $ = function (id) { return document.getElementById(id); };

  function status(text, isError) {
    var s = $("status");
    if (!s) return;
    s.textContent = text || "";
    s.classList.toggle("error", !!isError);
  }

  function setCount(pending) {
    $("review-count").textContent = pending === null || pending === undefined ? "" : "· " + pending + " pending";
  }

  function showEmpty() {
    state.item = null;
    cancelMode();
    $("review-item").classList.add("hidden");
    $("review-empty").classList.remove("hidden");
    setCount(0);
  }

  function show(item) {
    state.item = item;
    state.boxes = [];
    cancelMode();
    $("review-empty").classList.add("hidden");
    $("review-item").classList.remove("hidden");
    var analysis = item.analysis || {};
    analysis.width = analysis.width || item.width;
    analysis.height = analysis.height || item.height;
    var img = $("photo");
    img.setAttribute("src", "/v1/images/" + item.sha256 + "/file");
    img.setAttribute("alt", item.path || item.sha256);
    img.setAttribute("width", analysis.width);
    img.setAttribute("height", analysis.height);
    PX.drawOverlay($("overlay"), analysis);
    $("overlay").appendChild(PX.svg("g", { "data-layer": "fix" }));
    PX.wireToggles($("toggles"), $("overlay"));
    var link = $("item-link");
    link.textContent = String(item.path || item.sha256).split(/[\\/]/).pop();
    link.setAttribute("href", "/images/" + item.sha256);
    link.setAttribute("title", item.path || "");
    $("item-sha").textContent = item.sha256;
    var reasons = $("reasons");
    PX.clear(reasons);
    (item.reasons || analysis.review_reasons || []).forEach(function (r) { reasons.appendChild(PX.el("li", null, r)); });
    if (!reasons.firstChild) reasons.appendChild(PX.el("li", { class: "muted" }, "not flagged (opened from its image page)"));
    var table = $("item-labels");
    PX.clear(table);
    var labels = (analysis.classify && analysis.classify.labels) || [];
    if (labels.length) {
      table.appendChild(PX.el("tr", null, PX.el("th", null, "label"), PX.el("th", null, "score")));
      labels.forEach(function (l) {
        table.appendChild(PX.el("tr", null, PX.el("td", null, l.label), PX.el("td", { class: "num" }, Number(l.score).toFixed(3))));
      });
    }
    var text = $("item-text");
    var ocr = analysis.ocr && analysis.ocr.text;
    text.textContent = ocr || "";
    text.classList.toggle("hidden", !ocr);
    var faces = (analysis.faces && analysis.faces.faces) || [];
    var dets = (analysis.detect && analysis.detect.detections) || [];
    var parts = [];
    if (analysis.faces) parts.push(faces.length + " face(s)");
    if (analysis.detect) parts.push(dets.length + " object(s)");
    $("item-summary").textContent = parts.join(", ");
    $("relabel-input").value = labels.length ? labels[0].label : "";
    $("fix-label").value = dets.length ? dets[0].label : (labels.length ? labels[0].label : "");
    if (item.pending !== undefined) setCount(item.pending);
  }

  function loadNext() {
    var url = "/v1/review/next";
    if (state.skipped.length) {
      url += "?" + state.skipped.map(function (s) { return "skip=" + encodeURIComponent(s); }).join("&");
    }
    status("Loading…");
    return PX.getJSON(url).then(function (res) {
      if (res.status === 204 && state.skipped.length) {  // only skipped images are left: they come back
        state.skipped = [];
        return loadNext();
      }
      if (res.status === 204) { status(""); showEmpty(); return; }
      if (!res.ok || !res.data) {
        status("Review queue unavailable (" + PX.errorText(res) + ")", true);
        $("review-item").classList.add("hidden");
        return;
      }
      status("");
      show(res.data);
    });
  }

  function loadOne(sha) {
    return PX.getJSON("/v1/images/" + sha).then(function (res) {
      if (!res.ok || !res.data || !res.data.analysis) return loadNext();
      var a = res.data.analysis;
      show({ sha256: sha, path: a.path, width: a.width, height: a.height, analysis: a, reasons: a.review_reasons });
      setCount(null);
    });
  }

  function decide(decision, extra) {
    if (!state.item || state.busy) return;
    var body = { decision: decision };
    Object.keys(extra || {}).forEach(function (k) { body[k] = extra[k]; });
    state.busy = true;
    status("Saving " + decision + "…");
    var sha = state.item.sha256;
    PX.postJSON("/v1/review/" + sha, body).then(function (res) {
      state.busy = false;
      if (!res.ok) { status("Not saved: " + PX.errorText(res), true); return; }
      var done = decision + " saved for " + (state.item.path || sha);
      loadNext().then(function () { status(done); });
    });
  }

  function cancelMode() {
    state.mode = null;
    state.drag = null;
    $("relabel-form").classList.add("hidden");
    $("fix-form").classList.add("hidden");
    $("stage").classList.remove("drawing");
    var g = document.querySelector('#overlay g[data-layer="fix"]');
    if (g) PX.clear(g);
    state.boxes = [];
  }

  function startRelabel() {
    if (!state.item) return;
    cancelMode();
    state.mode = "relabel";
    $("relabel-form").classList.remove("hidden");
    var input = $("relabel-input");
    input.focus();
    input.select();
  }

  function startFix() {
    if (!state.item) return;
    cancelMode();
    state.mode = "fix";
    $("fix-form").classList.remove("hidden");
    $("stage").classList.add("drawing");
    $("fix-hint").textContent = "Drag on the image to draw a box; Enter saves, Esc cancels";
  }

  function skip() {
    if (!state.item) return;
    if (state.skipped.indexOf(state.item.sha256) < 0) state.skipped.push(state.item.sha256);
    var path = state.item.path;
    loadNext().then(function () { status("Skipped " + path); });
  }

  function toImage(ev) {
    var a = state.item.analysis || {};
    return PX.toImagePoint($("overlay"), ev, a.width || state.item.width, a.height || state.item.height);
  }

  /* Each drawn box takes the label typed for it: the label field's value when the next box
     is started, or when the decision is saved. Keeping the value lets several boxes of one
     class be drawn in a row. */
  function labelLastBox() {
    var last = state.boxes[state.boxes.length - 1];
    var label = $("fix-label").value.trim();
    if (!last || last.label || !label) return;
    last.label = label;
    // the same on-screen size as the other overlay labels, however the image is scaled
    var svgEl = $("overlay"), shown = svgEl.getBoundingClientRect(), vb = svgEl.viewBox.baseVal;
    var scale = shown.width > 0 && vb && vb.width ? Math.max(vb.width / shown.width, vb.height / shown.height) : 1;
    var size = Math.round(13 * scale * 10) / 10;
    var t = PX.svg("text", { x: last.box[0] + 3 * scale, y: last.box[1] + size + 2 * scale, class: "ov-text",
                             "font-size": size, "stroke-width": 2.5 * scale });
    t.textContent = label;
    svgEl.querySelector('g[data-layer="fix"]').appendChild(t);
  }

  function wireDrawing() {
    var svgEl = $("overlay");
    svgEl.addEventListener("pointerdown", function (ev) {
      if (state.mode !== "fix" || !state.item) return;
      ev.preventDefault();
      labelLastBox();
      var p = toImage(ev);
      var rect = PX.svg("rect", { x: p[0], y: p[1], width: 0, height: 0, class: "ov-fix" });
      document.querySelector('#overlay g[data-layer="fix"]').appendChild(rect);
      state.drag = { start: p, rect: rect };
      if (svgEl.setPointerCapture) { try { svgEl.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ } }
    });
    svgEl.addEventListener("pointermove", function (ev) {
      if (!state.drag) return;
      var p = toImage(ev), s = state.drag.start;
      state.drag.rect.setAttribute("x", Math.min(s[0], p[0]));
      state.drag.rect.setAttribute("y", Math.min(s[1], p[1]));
      state.drag.rect.setAttribute("width", Math.abs(p[0] - s[0]));
      state.drag.rect.setAttribute("height", Math.abs(p[1] - s[1]));
    });
    svgEl.addEventListener("pointerup", function (ev) {
      if (!state.drag) return;
      var p = toImage(ev), s = state.drag.start;
      var box = [Math.min(s[0], p[0]), Math.min(s[1], p[1]), Math.max(s[0], p[0]), Math.max(s[1], p[1])]
        .map(function (v) { return Math.round(v * 10) / 10; });
      if (box[2] - box[0] < 2 || box[3] - box[1] < 2) {
        state.drag.rect.parentNode.removeChild(state.drag.rect);  // a click, not a box
      } else {
        state.boxes.push({ box: box, label: null });
        $("fix-hint").textContent = state.boxes.length + " box(es) drawn; type this box's label, then draw " +
          "the next or press Enter to save";
      }
      state.drag = null;
      var input = $("fix-label");
      input.focus();
      input.select();
    });
  }

  function wireForms() {
    $("relabel-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var labels = $("relabel-input").value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      if (!labels.length) { status("Type at least one label", true); return; }
      decide("relabel", { labels: labels });
    });
    $("fix-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!state.boxes.length) { status("Drag on the image to draw a box first", true); return; }
      labelLastBox();
      var missing = state.boxes.filter(function (b) { return !b.label; }).length;
      if (missing) { status("Type the label of the last box", true); return; }
      decide("fix", { boxes: state.boxes.map(function (b) { return { box: b.box, label: b.label }; }) });
    });
    document.querySelectorAll("#review-actions button[data-action]").forEach(function (btn) {
      btn.addEventListener("click", function () { act(btn.getAttribute("data-action")); });
    });
  }

  function act(action) {
    if (action === "accept") decide("accept");
    else if (action === "reject") decide("reject");
    else if (action === "relabel") startRelabel();
    else if (action === "fix") startFix();
    else if (action === "skip") skip();
    else if (action === "help") $("help").classList.toggle("hidden");
  }

  var KEYS = { a: "accept", r: "reject", l: "relabel", f: "fix", s: "skip", "?": "help" };

  function wireKeys() {
    document.addEventListener("keydown", function (ev) {
      var t = ev.target;
      var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
      if (ev.key === "Escape") { cancelMode(); if (typing) t.blur(); return; }
      if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (ev.key === "Enter" && state.mode === "fix") { ev.preventDefault(); $("fix-form").requestSubmit(); return; }
      var action = KEYS[ev.key];
      if (!action) return;
      ev.preventDefault();
      act(action);
    });
  }

  function initReadOnly(page) {
    var out = $("queue-stats");
    if (!out) return;
    PX.getJSON("/v1/review/stats").then(function (res) {
      if (!res.ok || !res.data) { out.textContent = "Queue statistics unavailable (" + PX.errorText(res) + ")"; return; }
      out.textContent = (res.data.pending || 0) + " images wait for review; " + (res.data.reviewed || 0) + " reviewed.";
      setCount(res.data.pending);
    });
  }

  function init() {
    var page = $("review-page");
    if (!page) return;
    if (page.getAttribute("data-can-review") !== "true") { initReadOnly(page); return; }
    wireForms();
    wireDrawing();
    wireKeys();
    var sha = page.getAttribute("data-sha");
    if (sha) loadOne(sha); else loadNext();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
