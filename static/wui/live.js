// Tables that refresh themselves (htmx polling, marked data-live): an operator keeps the
// keyboard focus, hears what changed, and sees when the table stopped being current.
(function () {
  "use strict";

  var lastGood = new Date();
  var known = {};
  var focusKey = null;

  function isLive(elt) {
    return elt && elt.matches && elt.matches("[data-live]");
  }

  function clock(date) {
    return [date.getHours(), date.getMinutes(), date.getSeconds()]
      .map(function (n) { return String(n).padStart(2, "0"); })
      .join(":");
  }

  // Outside the swapped element, so that a refresh never takes them away.
  function region(table, id, make) {
    var elt = document.getElementById(id);
    if (!elt) {
      elt = make();
      elt.id = id;
      table.parentNode.insertBefore(elt, table);
    }
    return elt;
  }

  function notice(table) {
    return region(table, table.id + "-stale", function () {
      var p = document.createElement("p");
      p.className = "live-stale";
      p.setAttribute("role", "status");
      return p;
    });
  }

  function announcer(table) {
    return region(table, table.id + "-announce", function () {
      var div = document.createElement("div");
      div.className = "visually-hidden";
      div.setAttribute("aria-live", "polite");
      return div;
    });
  }

  function statuses(table) {
    var out = {};
    table.querySelectorAll("[data-node][data-status]").forEach(function (row) {
      out[row.dataset.node] = { status: row.dataset.status, label: row.dataset.statusLabel || row.dataset.status };
    });
    return out;
  }

  function announceChanges(table) {
    var now = statuses(table);
    var said = [];
    Object.keys(now).forEach(function (node) {
      if (!known[node] || known[node].status !== now[node].status) {
        said.push("Node " + node + " is " + now[node].label);
      }
    });
    Object.keys(known).forEach(function (node) {
      if (!now[node]) said.push("Node " + node + " is no longer in the cluster");
    });
    known = now;
    if (said.length) announcer(table).textContent = said.join(". ") + ".";
  }

  function markStale(table) {
    if (table.classList.contains("stale")) return;
    table.classList.add("stale");
    notice(table).textContent = "Not updated since " + clock(lastGood) + ": the control plane is not answering. Retrying…";
  }

  function markFresh(table) {
    lastGood = new Date();
    if (!table.classList.contains("stale")) return;
    table.classList.remove("stale");
    notice(table).textContent = "";
  }

  // An element without an id (htmx restores focus by id) is found again by what it is and does.
  function keyOf(elt) {
    if (elt.id) return { id: elt.id };
    var form = elt.form || elt.closest("form");
    return { tag: elt.tagName, text: elt.textContent.trim(), action: form ? form.getAttribute("action") : null };
  }

  function findByKey(table, key) {
    if (key.id) return document.getElementById(key.id);
    var candidates = table.querySelectorAll(key.tag);
    for (var i = 0; i < candidates.length; i++) {
      var elt = candidates[i];
      var form = elt.form || elt.closest("form");
      if (elt.textContent.trim() === key.text && (form ? form.getAttribute("action") : null) === key.action) return elt;
    }
    return null;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (table) {
      notice(table);
      announcer(table);
      known = statuses(table);
    });
  });

  document.addEventListener("htmx:configRequest", function (evt) {
    var table = evt.detail.elt;
    if (isLive(table) && table.dataset.liveVersion) evt.detail.headers["X-Live-Version"] = table.dataset.liveVersion;
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var table = evt.detail.elt;
    if (!isLive(table)) return;
    // A redirect to the login page (an expired session) belongs to the whole window, not the table.
    var url = evt.detail.xhr.responseURL;
    if (url && new URL(url).pathname.endsWith("/login/")) {
      evt.detail.shouldSwap = false;
      window.location.href = url;
      return;
    }
    var active = document.activeElement;
    focusKey = active && active !== document.body && table.contains(active) ? keyOf(active) : null;
  });

  document.addEventListener("htmx:load", function (evt) {
    var table = evt.target;
    if (!isLive(table)) return;
    announceChanges(table);
    if (focusKey && (!document.activeElement || document.activeElement === document.body)) {
      var again = findByKey(table, focusKey);
      if (again) again.focus({ preventScroll: true });
    }
    focusKey = null;
  });

  // The element that asked may have been swapped out by its own answer: its successor has its id.
  function current(elt) {
    if (!isLive(elt)) return null;
    return elt.isConnected ? elt : document.getElementById(elt.id);
  }

  document.addEventListener("htmx:afterRequest", function (evt) {
    var table = current(evt.detail.elt);
    if (!table) return;
    if (evt.detail.successful) markFresh(table);
    else markStale(table);
  });

  ["htmx:responseError", "htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (evt) {
      var table = current(evt.detail.elt);
      if (table) markStale(table);
    });
  });
})();
