/* Dashboard: catalog statistics (/v1/stats), server metrics (/metrics, Prometheus text)
   and drift (/v1/drift), drawn as inline SVG; refreshed every 15 s. Each panel degrades to
   an "unavailable" notice on its own when its source fails. */
(function () {
  "use strict";
  var PX = window.PX;
  var W = 600, H = 200, PAD_L = 36, PAD_B = 22, PAD_T = 8;
  var previous = null;  // last metrics sample, for throughput

  function set(id, text) { var n = document.getElementById(id); if (n) n.textContent = text; }

  function yAxis(chart, max) {
    [0, 0.5, 1].forEach(function (f) {
      var y = H - PAD_B - f * (H - PAD_B - PAD_T);
      chart.appendChild(PX.svg("line", { x1: PAD_L - 3, x2: W, y1: y, y2: y, class: "axis" }));
      chart.appendChild(PX.svg("text", { x: PAD_L - 5, y: y + 3, "text-anchor": "end", class: "tick",
                                         text: PX.fmtNum(max * f, max * f < 10 ? 1 : 0) }));
    });
  }

  function xTicks(chart, days, step) {
    var idx = days.length <= 1 ? [0] : [0, Math.floor((days.length - 1) / 2), days.length - 1];
    idx.filter(function (v, i, a) { return a.indexOf(v) === i; }).forEach(function (i) {
      chart.appendChild(PX.svg("text", { x: PAD_L + (i + 0.5) * step, y: H - 6, "text-anchor": "middle",
                                         class: "tick", text: days[i] }));
    });
  }

  /* series: [{name, values: [..per day..]}]; one series = plain bars, several = stacked. */
  function barChart(box, days, series, id) {
    PX.clear(box);
    if (!days.length) { box.appendChild(PX.el("p", { class: "muted" }, "No data yet.")); return; }
    var totals = days.map(function (_, i) { return series.reduce(function (s, se) { return s + (se.values[i] || 0); }, 0); });
    var max = Math.max.apply(null, totals.concat([1]));
    var chart = PX.svg("svg", { class: "chart", id: id, viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none",
                                role: "img", "aria-label": "bar chart" });
    yAxis(chart, max);
    var step = (W - PAD_L) / days.length, bw = Math.max(1, Math.min(48, step * 0.8));
    days.forEach(function (day, i) {
      var y0 = H - PAD_B;
      series.forEach(function (se, k) {
        var v = se.values[i] || 0;
        if (!v) return;
        var h = v / max * (H - PAD_B - PAD_T);
        var rect = PX.svg("rect", { x: PAD_L + i * step + (step - bw) / 2, y: y0 - h, width: bw, height: h,
                                    class: series.length > 1 ? "s" + (k % 7) : "bar", "data-day": day, "data-value": v });
        rect.appendChild(PX.svg("title", { text: day + (series.length > 1 ? " · " + se.name : "") + ": " + v }));
        chart.appendChild(rect);
        y0 -= h;
      });
    });
    xTicks(chart, days, step);
    box.appendChild(chart);
    if (series.length > 1) {
      box.appendChild(PX.el("div", { class: "legend" }, series.map(function (se, k) {
        return PX.el("span", { class: "s" + (k % 7) }, se.name);
      })));
    }
  }

  function renderStats(stats) {
    set("v-images", PX.fmtNum(stats.images, 0));
    set("v-needs-review", PX.fmtNum(stats.needs_review, 0));
    var analysed = stats.analyses || stats.images || 0;
    set("v-review-rate", analysed ? (100 * (stats.needs_review || 0) / analysed).toFixed(1) + " %" : "–");
    set("v-reviewed", PX.fmtNum(stats.reviewed, 0));
    var perDay = stats.per_day || [];
    barChart(document.getElementById("chart-per-day"), perDay.map(function (d) { return d.day; }),
             [{ name: "images", values: perDay.map(function (d) { return d.images; }) }], "per-day-svg");
    // labels over time: the 6 most frequent labels, the rest as "other"
    var lpd = stats.labels_per_day || [];
    var totals = {};
    lpd.forEach(function (r) { totals[r.label] = (totals[r.label] || 0) + r.n; });
    var top = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a]; }).slice(0, 6);
    var days = Array.from(new Set(lpd.map(function (r) { return r.day; }))).sort();
    var series = top.map(function (label) { return { name: label, values: days.map(function () { return 0; }) }; });
    var other = { name: "other", values: days.map(function () { return 0; }) };
    lpd.forEach(function (r) {
      var k = top.indexOf(r.label), i = days.indexOf(r.day);
      (k >= 0 ? series[k] : other).values[i] += r.n;
    });
    if (other.values.some(function (v) { return v > 0; })) series.push(other);
    barChart(document.getElementById("chart-labels"), days, series, "labels-svg");
    var list = document.getElementById("top-labels");
    PX.clear(list);
    var tl = stats.top_labels || [];
    if (!tl.length) { list.appendChild(PX.el("p", { class: "muted" }, "No labels yet.")); return; }
    var table = PX.el("table", { class: "data", id: "top-labels-table" }, PX.el("tr", null, PX.el("th", null, "label"), PX.el("th", null, "images")));
    tl.slice(0, 12).forEach(function (r) {
      table.appendChild(PX.el("tr", null, PX.el("td", null, PX.el("a", { href: "/?label=" + encodeURIComponent(r.label) }, r.label)),
                               PX.el("td", { class: "num" }, String(r.n))));
    });
    list.appendChild(table);
  }

  /* Prometheus text format -> [{name, labels, value}] */
  function parseMetrics(text) {
    var out = [];
    String(text).split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === "#") return;
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) return;
      var labels = {}, re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g, lm;
      while ((lm = re.exec(m[2] || "")) !== null) labels[lm[1]] = lm[2];
      out.push({ name: m[1], labels: labels, value: parseFloat(m[3]) });
    });
    return out;
  }

  function sum(samples, name, filter) {
    return samples.filter(function (s) { return s.name === name && (!filter || filter(s.labels)); })
                  .reduce(function (a, s) { return a + s.value; }, 0);
  }

  function renderMetrics(samples) {
    var now = Date.now() / 1000;
    var analysed = sum(samples, "pixsight_images_analyzed_total");
    if (previous && now > previous.t) {
      set("v-throughput", PX.fmtNum(Math.max(0, analysed - previous.analysed) / (now - previous.t), 2));
    } else {
      set("v-throughput", analysed ? PX.fmtNum(analysed, 0) + " total" : "0");
    }
    previous = { t: now, analysed: analysed };
    var notMetrics = function (l) { return l.route !== "/metrics" && String(l.route || "").indexOf("/static") !== 0; };
    var reqN = sum(samples, "pixsight_http_request_duration_seconds_count", notMetrics);
    var reqS = sum(samples, "pixsight_http_request_duration_seconds_sum", notMetrics);
    set("v-latency", reqN ? PX.fmtNum(1000 * reqS / reqN, 1) + " ms" : "–");
    set("v-queue", PX.fmtNum(sum(samples, "pixsight_queue_depth"), 0));
    var box = document.getElementById("latency");
    PX.clear(box);
    var table = PX.el("table", { class: "data", id: "latency-table" },
      PX.el("tr", null, PX.el("th", null, "what"), PX.el("th", null, "count"), PX.el("th", null, "mean ms")));
    var routes = {};
    samples.forEach(function (s) {
      if (s.name === "pixsight_http_request_duration_seconds_count" && s.labels.route && notMetrics(s.labels)) {
        var key = (s.labels.method || "") + " " + s.labels.route;
        routes[key] = routes[key] || { n: 0, s: 0 };
        routes[key].n += s.value;
      }
      if (s.name === "pixsight_http_request_duration_seconds_sum" && s.labels.route && notMetrics(s.labels)) {
        var k2 = (s.labels.method || "") + " " + s.labels.route;
        routes[k2] = routes[k2] || { n: 0, s: 0 };
        routes[k2].s += s.value;
      }
    });
    var tasks = {};
    samples.forEach(function (s) {
      var m = /^pixsight_inference_seconds_(count|sum)$/.exec(s.name);
      if (!m) return;
      var key = "inference " + (s.labels.task || "?") + (s.labels.model ? " (" + s.labels.model + ")" : "");
      tasks[key] = tasks[key] || { n: 0, s: 0 };
      tasks[key][m[1] === "count" ? "n" : "s"] += s.value;
    });
    var rows = Object.keys(tasks).sort().map(function (k) { return [k, tasks[k]]; })
      .concat(Object.keys(routes).sort(function (a, b) { return routes[b].n - routes[a].n; }).slice(0, 10)
      .map(function (k) { return [k, routes[k]]; }));
    rows.forEach(function (r) {
      table.appendChild(PX.el("tr", null, PX.el("td", null, r[0]), PX.el("td", { class: "num" }, PX.fmtNum(r[1].n, 0)),
        PX.el("td", { class: "num" }, r[1].n ? PX.fmtNum(1000 * r[1].s / r[1].n, 1) : "–")));
    });
    if (!rows.length) box.appendChild(PX.el("p", { class: "muted" }, "No requests measured yet."));
    else box.appendChild(table);
  }

  function flat(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "number") return PX.fmtNum(value, 4);
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function renderDrift(d) {
    var st = d.status || "unknown";
    set("v-drift", st.replace(/_/g, " "));
    var box = document.getElementById("drift");
    PX.clear(box);
    box.appendChild(PX.el("p", null, "Status: ", PX.el("span", { class: "badge " + (st === "drift" ? "drift" : st === "ok" ? "ok" : ""), id: "drift-status" }, st),
      d.computed ? PX.el("span", { class: "muted small" }, " computed " + PX.fmtTime(d.computed)) : null));
    if (d.message || d.reason) box.appendChild(PX.el("p", { class: "muted" }, d.message || d.reason));
    var table = PX.el("table", { class: "data" });
    ["reference", "current"].forEach(function (w) {
      if (d[w]) table.appendChild(PX.el("tr", null, PX.el("th", null, w + " window"), PX.el("td", null, flat(d[w]))));
    });
    var stats = d.statistics || {};
    Object.keys(stats).forEach(function (k) {
      table.appendChild(PX.el("tr", null, PX.el("th", null, k), PX.el("td", null, flat(stats[k]))));
    });
    if (table.firstChild) box.appendChild(table);
  }

  function refresh() {
    PX.getJSON("/v1/stats").then(function (res) {
      if (res.ok && res.data) { renderStats(res.data); return; }
      ["chart-per-day", "chart-labels", "top-labels"].forEach(function (id) {
        PX.unavailable(document.getElementById(id), "Catalog statistics", res);
      });
    });
    fetch("/metrics", { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok) throw { status: resp.status };
      return resp.text();
    }).then(function (text) { renderMetrics(parseMetrics(text)); }, function (err) {
      PX.unavailable(document.getElementById("latency"), "Server metrics", { status: (err && err.status) || 0, data: null });
    });
    PX.getJSON("/v1/drift").then(function (res) {
      if (res.ok && res.data) { renderDrift(res.data); return; }
      set("v-drift", "unavailable");
      PX.unavailable(document.getElementById("drift"), "Drift status", res);
    });
    set("updated", "updated " + new Date().toLocaleTimeString());
  }

  function init() {
    if (!document.getElementById("tiles")) return;
    refresh();
    window.setInterval(refresh, 15000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
