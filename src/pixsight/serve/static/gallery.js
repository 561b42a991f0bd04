/* Gallery: "Load more" appends the next page of cards from /v1/images (the plain link
   still works without JavaScript: it opens the next page). */
(function () {
  "use strict";
  var PX = window.PX;

  function basename(p) {
    var parts = String(p || "").split(/[\\/]/);
    return parts[parts.length - 1] || p;
  }

  /* Same markup as templates/_card.html. */
  function card(c) {
    var flags = PX.el("span", { class: "flags" });
    if (c.needs_review && !c.reviewed) flags.appendChild(PX.el("span", { class: "badge review" }, "needs review"));
    if (c.reviewed) flags.appendChild(PX.el("span", { class: "badge " + c.reviewed }, c.reviewed));
    if (c.has_text) flags.appendChild(PX.el("span", { class: "badge" }, "text"));
    if (c.has_faces) flags.appendChild(PX.el("span", { class: "badge" }, "faces"));
    (c.people || []).forEach(function (n) { flags.appendChild(PX.el("span", { class: "badge person" }, n)); });
    var label = PX.el("span", { class: "label" }, c.top_label || "–");
    if (c.top_label) label.appendChild(PX.el("span", { class: "muted" }, " " + Number(c.top_score || 0).toFixed(2)));
    return PX.el("div", { class: "card", "data-sha": c.sha256 },
      PX.el("a", { class: "thumb", href: "/images/" + c.sha256 },
        PX.el("img", { loading: "lazy", src: "/v1/images/" + c.sha256 + "/thumb", alt: c.path })),
      PX.el("div", { class: "meta" }, label, PX.el("span", { class: "path", title: c.path }, basename(c.path)), flags));
  }

  function withOffset(url, offset) {
    var u = new URL(url, window.location.origin);
    u.searchParams.set("offset", String(offset));
    return u.pathname + u.search;
  }

  function init() {
    var more = document.getElementById("load-more");
    var grid = document.getElementById("grid");
    if (!more || !grid) return;
    more.addEventListener("click", function (ev) {
      ev.preventDefault();
      var api = more.getAttribute("data-api");
      more.classList.add("loading");
      more.textContent = "Loading…";
      PX.getJSON(api).then(function (res) {
        more.classList.remove("loading");
        more.textContent = "Load more";
        if (!res.ok || !res.data || !Array.isArray(res.data.items)) {
          var note = document.getElementById("more-error") || PX.el("p", { id: "more-error", class: "notice warn unavailable" });
          note.textContent = "More images unavailable (" + PX.errorText(res) + ")";
          more.parentNode.appendChild(note);
          return;
        }
        res.data.items.forEach(function (c) { grid.appendChild(card(c)); });
        var shown = res.data.offset + res.data.items.length;
        var counter = document.getElementById("shown");
        if (counter) counter.textContent = String(shown);
        if (shown >= res.data.total || res.data.items.length === 0) {
          more.classList.add("hidden");
        } else {
          more.setAttribute("data-api", withOffset(api, shown));
          more.setAttribute("href", withOffset(more.getAttribute("href"), shown));
        }
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
