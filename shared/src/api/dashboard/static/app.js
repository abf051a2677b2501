// Countersign dashboard: progressive enhancement only (every page works without this file).
// - The queue refreshes itself: it asks /dashboard/pulse every few seconds whether anything
//   changed, and only then fetches the page again and swaps the queue in place (rows ticked for
//   "Approve selected" stay ticked).
// - Keys: j/k move through the queue, Enter opens; on an item a approves, r rejects, u goes back.
(function () {
  "use strict";
  var REFRESH_MS = 2500;

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // ---- queue selection
  var selected = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue [data-row]")); }
  function select(index) {
    var all = rows();
    if (!all.length) { selected = -1; return; }
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (row, i) {
      row.classList.toggle("selected", i === selected);
      if (i === selected) { row.setAttribute("aria-current", "true"); } else { row.removeAttribute("aria-current"); }
    });
    var link = all[selected].querySelector("a");
    if (link) { link.focus({ preventScroll: true }); all[selected].scrollIntoView({ block: "nearest" }); }
  }

  // ---- live refresh
  function live() {
    var queue = document.getElementById("queue");
    if (!queue || !window.fetch || !window.DOMParser) { return; }
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(queue.getAttribute("data-pulse"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (res) {
          if (res.status === 401) { window.location.reload(); throw new Error("signed out"); }
          return res.json();
        })
        .then(function (pulse) {
          var current = document.getElementById("queue");
          if (!pulse || pulse.stamp === current.getAttribute("data-stamp")) { return null; }
          return fetch(window.location.href, { credentials: "same-origin" }).then(function (res) { return res.text(); })
            .then(function (html) {
              var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("queue");
              if (!fresh) { return; }
              var keep = selected;
              // Rows ticked for a bulk decision stay ticked.
              var ticked = Array.prototype.map.call(current.querySelectorAll("input[name=ids]:checked"),
                function (box) { return box.value; });
              current.replaceWith(document.importNode(fresh, true));
              document.querySelectorAll("#queue input[name=ids]").forEach(function (box) {
                if (ticked.indexOf(box.value) >= 0) { box.checked = true; }
              });
              if (keep >= 0) { select(keep); }
            });
        })
        .catch(function () { /* try again on the next tick */ })
        .then(function () { busy = false; });
    }, REFRESH_MS);
  }

  // ---- keys
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var key = e.key;
    if (document.getElementById("queue")) {
      if (key === "j") { select(selected + 1); e.preventDefault(); }
      else if (key === "k") { select(selected < 0 ? 0 : selected - 1); e.preventDefault(); }
      else if ((key === "Enter" || key === "o") && selected >= 0) {
        var link = rows()[selected] && rows()[selected].querySelector("a");
        if (link) { e.preventDefault(); link.click(); }
      }
      return;
    }
    var button = document.querySelector("[data-decide] button[data-shortcut='" + key + "']");
    if (button) { e.preventDefault(); button.click(); return; }
    if (key === "u") {
      var back = document.querySelector("[data-back]");
      if (back) { e.preventDefault(); back.click(); }
    }
  });

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", live); } else { live(); }
})();
