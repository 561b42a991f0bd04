/* pixsight web UI: helpers shared by every page (loaded first, defines window.PX).
 *
 * Rules kept here so pages follow them: data from the server is put in the page with
 * textContent / setAttribute only (never parsed as HTML); state-changing requests carry the
 * X-CSRF-Token header from <meta name="csrf-token">; styling is done with classes (the
 * CSP forbids inline styles).
 */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";

  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  /* el("a", {href: "/x", class: "y"}, "text", child) -> element; strings become text nodes. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    });
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /* fetch JSON: resolves to {ok, status, data}; never rejects (network errors -> status 0). */
  function request(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET" && method !== "HEAD") opts.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (resp) {
      if (resp.status === 204) return { ok: true, status: 204, data: null };
      var type = resp.headers.get("Content-Type") || "";
      var parse = type.indexOf("json") >= 0 ? resp.json() : resp.text();
      return parse.then(function (data) { return { ok: resp.ok, status: resp.status, data: data }; },
                        function () { return { ok: resp.ok, status: resp.status, data: null }; });
    }, function () { return { ok: false, status: 0, data: null }; });
  }

  function errorText(res) {
    if (res.status === 0) return "server unreachable";
    var e = res.data && res.data.error;
    return e ? (e.type + ": " + e.message) : ("HTTP " + res.status);
  }

  /* Replace a container's content with an "unavailable" notice naming what failed. */
  function unavailable(container, what, res) {
    clear(container);
    container.appendChild(el("p", { class: "notice warn unavailable" },
      what + " unavailable" + (res ? " (" + errorText(res) + ")" : "")));
  }

  function fmtNum(x, digits) {
    if (x === null || x === undefined || isNaN(x)) return "–";
    return Number(x).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 2 : digits });
  }

  function fmtTime(ts) {
    if (!ts) return "–";
    var d = new Date(ts * 1000);
    return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  /* Draw an analysis as SVG layers: boxes (faces + detections), landmarks, ocr, labels.
     The SVG's viewBox is the image's own pixel grid, so boxes need no scaling. */
  function drawOverlay(svgEl, analysis) {
    clear(svgEl);
    var w = analysis.width || 1, h = analysis.height || 1;
    svgEl.setAttribute("viewBox", "0 0 " + w + " " + h);
    svgEl.setAttribute("preserveAspectRatio", "xMidYMid meet");
    var layers = {};
    ["ocr", "boxes", "landmarks", "labels"].forEach(function (name) {
      layers[name] = svg("g", { "data-layer": name, class: "layer-" + name });
      svgEl.appendChild(layers[name]);
    });
    // text and points keep a readable screen size however much the image is scaled
    var shown = svgEl.getBoundingClientRect();
    var scale = shown.width > 0 && shown.height > 0 ? Math.max(w / shown.width, h / shown.height) : 1;
    var fontSize = Math.round(13 * scale * 10) / 10;
    function rect(layer, box, cls, title) {
      var r = svg("rect", { x: box[0], y: box[1], width: Math.max(0, box[2] - box[0]),
                            height: Math.max(0, box[3] - box[1]), class: cls });
      if (title) r.appendChild(svg("title", { text: title }));
      layer.appendChild(r);
    }
    function tag(x, y, text) {
      var t = svg("text", { x: x + 3 * scale, y: Math.max(fontSize, y - 4 * scale), class: "ov-text", "font-size": fontSize,
                             "stroke-width": 2.5 * scale, text: text });
      layers.labels.appendChild(t);
    }
    var faces = (analysis.faces && analysis.faces.faces) || [];
    faces.forEach(function (f, i) {
      var name = f.person && f.person !== "unknown" ? f.person : "face " + (i + 1);
      rect(layers.boxes, f.box, "ov-face", name + " " + fmtNum(f.score));
      tag(f.box[0], f.box[1], name);
      (f.landmarks || []).forEach(function (p) {
        if (p && isFinite(p[0]) && isFinite(p[1]) && p[0] !== null) {
          layers.landmarks.appendChild(svg("circle", { cx: p[0], cy: p[1], r: 3 * scale, class: "ov-lm" }));
        }
      });
    });
    var dets = (analysis.detect && analysis.detect.detections) || [];
    dets.forEach(function (d) {
      rect(layers.boxes, d.box, "ov-box", d.label + " " + fmtNum(d.score));
      tag(d.box[0], d.box[1], d.label + " " + fmtNum(d.score));
    });
    var lines = (analysis.ocr && analysis.ocr.lines) || [];
    lines.forEach(function (ln) {
      var pts = (ln.polygon && ln.polygon.length === 4) ? ln.polygon :
        [[ln.box[0], ln.box[1]], [ln.box[2], ln.box[1]], [ln.box[2], ln.box[3]], [ln.box[0], ln.box[3]]];
      var poly = svg("polygon", { points: pts.map(function (p) { return p[0] + "," + p[1]; }).join(" "), class: "ov-ocr" });
      poly.appendChild(svg("title", { text: ln.text }));
      layers.ocr.appendChild(poly);
    });
    var labels = (analysis.classify && analysis.classify.labels) || [];
    if (labels.length) {
      var text = labels.slice(0, 3).map(function (l) { return l.label + " " + fmtNum(l.score); }).join(" · ");
      layers.labels.appendChild(svg("text", { x: 6 * scale, y: h - 8 * scale, class: "ov-text classify", "font-size": fontSize,
                                                 "stroke-width": 2.5 * scale, text: text }));
    }
    return layers;
  }

  /* A pointer event's position in the SVG's own (image pixel) coordinates, clamped to it. */
  function toImagePoint(svgEl, ev, w, h) {
    var pt = svgEl.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    var p = pt.matrixTransform(svgEl.getScreenCTM().inverse());
    return [Math.max(0, Math.min(w, p.x)), Math.max(0, Math.min(h, p.y))];
  }

  /* Checkboxes [data-toggle=layer] show/hide the overlay's layers; call again after a redraw
     (listeners are added once, the current state is re-applied every time). */
  function wireToggles(root, svgEl) {
    root.querySelectorAll("input[data-toggle]").forEach(function (box) {
      function apply() {
        var g = svgEl.querySelector('g[data-layer="' + box.getAttribute("data-toggle") + '"]');
        if (g) g.classList.toggle("off", !box.checked);
      }
      if (!box.hasAttribute("data-wired")) {
        box.setAttribute("data-wired", "");
        box.addEventListener("change", apply);
      }
      apply();
    });
  }

  window.PX = {
    csrf: csrf, el: el, svg: svg, clear: clear, getJSON: function (u) { return request("GET", u); },
    postJSON: function (u, b) { return request("POST", u, b); }, errorText: errorText,
    unavailable: unavailable, fmtNum: fmtNum, fmtTime: fmtTime, drawOverlay: drawOverlay, wireToggles: wireToggles,
    toImagePoint: toImagePoint
  };
})();
