// CaseForum's only script of its own: loaded from /static, no inline code (strict CSP).
(function () {
  "use strict";
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  // every htmx request carries the CSRF token in a header
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });
  // forms marked data-confirm ask first
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);
  // comparison panes scroll together
  function syncPanes(root) {
    var panes = (root || document).querySelectorAll("[data-sync]");
    panes.forEach(function (pane) {
      // a pane scrolls by itself: it takes focus, so the arrow keys can scroll it
      if (!pane.hasAttribute("tabindex")) {
        var first = document.querySelector('[data-sync="' + pane.dataset.sync + '"]') === pane;
        pane.setAttribute("tabindex", "0");
        pane.setAttribute("role", "region");
        pane.setAttribute("aria-label", first ? "Left document" : "Right document");
      }
      pane.addEventListener("scroll", function () {
        if (pane.dataset.syncing) { return; }
        document.querySelectorAll('[data-sync="' + pane.dataset.sync + '"]').forEach(function (other) {
          if (other !== pane) {
            other.dataset.syncing = "1";
            other.scrollTop = pane.scrollTop;
            window.requestAnimationFrame(function () { delete other.dataset.syncing; });
          }
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { syncPanes(document); });
  document.addEventListener("htmx:load", function (event) { syncPanes(event.target); });

  // a wide table scrolls sideways in its own box on a narrow screen (app.css); with no
  // link or button inside, keyboard users reach it only if the box itself takes focus
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  function focusableScrollers() {
    document.querySelectorAll("table.dense").forEach(function (table) {
      var scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex") && !table.querySelector(FOCUSABLE)) {
        table.setAttribute("tabindex", "0");
        table.dataset.scrollFocus = "1";
      } else if (!scrolls && table.dataset.scrollFocus) {
        table.removeAttribute("tabindex");
        delete table.dataset.scrollFocus;
      }
    });
  }
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(focusableScrollers, 150);
  });
  document.addEventListener("DOMContentLoaded", focusableScrollers);
  document.addEventListener("htmx:load", focusableScrollers);
})();

// Live updates: the htmx ws extension, told where to resume after a dropped
// connection (the server resends everything after the last event id seen).
(function () {
  "use strict";
  var lastEventId = 0;
  function rememberEventIds(root) {
    root.querySelectorAll("[data-event-id]").forEach(function (el) {
      var id = parseInt(el.getAttribute("data-event-id"), 10);
      if (id > lastEventId) { lastEventId = id; }
    });
  }
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var match = /data-event-id="(\d+)"/.exec(event.detail.message);
    if (match) {
      var id = parseInt(match[1], 10);
      if (id <= lastEventId) { event.preventDefault(); return; }  // seen already
      lastEventId = id;
    }
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
    var banner = document.getElementById("new-posts-banner");
    if (banner && !atBottom && event.detail.message.indexOf("beforeend:#posts") !== -1) {
      banner.hidden = false;
    }
  });
  document.addEventListener("htmx:wsClose", function (event) {
    if (event.detail.event && event.detail.event.code === 4410) { window.location.reload(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx && htmx.createWebSocket) {
      var create = htmx.createWebSocket;
      htmx.createWebSocket = function (url) {
        if (lastEventId) { url = url.replace(/([?&]after=)\d+/, "$1" + lastEventId); }
        return create(url);
      };
    }
    var live = document.querySelector("[data-live]");
    if (live) {
      var m = /after=(\d+)/.exec(live.getAttribute("ws-connect") || "");
      if (m) { lastEventId = Math.max(lastEventId, parseInt(m[1], 10)); }
    }
    rememberEventIds(document);
  });
  window.caseforumLastEventId = function () { return lastEventId; };
})();

// Forum niceties: author-only links, reply/quote, composer reset, banner.
(function () {
  "use strict";
  function me() {
    var meta = document.querySelector('meta[name="user-id"]');
    return meta ? meta.getAttribute("content") : null;
  }
  function showAuthorControls(root) {
    var id = me();
    (root || document).querySelectorAll(".author-only").forEach(function (el) {
      el.hidden = el.getAttribute("data-author") !== id;
    });
  }
  document.addEventListener("DOMContentLoaded", function () { showAuthorControls(document); });
  document.addEventListener("htmx:load", function (event) { showAuthorControls(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) { showAuthorControls(event.target); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest(".reply-link");
    if (!link) { return; }
    var form = document.querySelector("#composer form") || document.querySelector("form#composer");
    if (!form) { return; }
    form.querySelector('input[name="reply_to"]').value = link.getAttribute("data-reply-to");
    var box = form.querySelector("textarea, input[name=body]");
    var quote = (link.getAttribute("data-quote") || "").split("\n").map(function (l) { return "> " + l; }).join("\n");
    box.value = quote + "\n\n" + box.value;
    box.focus();
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.hasAttribute && form.hasAttribute("data-reset-on-success") && event.detail.successful &&
        event.detail.xhr && event.detail.xhr.status < 400) {
      form.reset();
      var reply = form.querySelector('input[name="reply_to"]');
      if (reply) { reply.value = ""; }
      var preview = document.getElementById("preview");
      if (preview) { preview.innerHTML = ""; }
    }
  });
  document.addEventListener("click", function (event) {
    var banner = event.target.closest && event.target.closest("#new-posts-banner");
    if (banner) { banner.hidden = true; }
  });
})();

// Errors reach the screen.  htmx drops 4xx/5xx answers by default, so nothing would
// happen where the user acted.  A form's error goes into its error region (the
// form's [data-error] element, made on first use) and the typed input stays; a
// navigation (boosted link, hx-get outside a form) shows the error page instead.
(function () {
  "use strict";
  // the container's own error region, made (first in the container) on first use
  function regionIn(container, selector) {
    var region = container.querySelector(selector);
    if (!region) {
      region = document.createElement("div");
      region.setAttribute("data-error", "");
      region.setAttribute("role", "alert");
      region.className = "form-error";
      container.insertBefore(region, container.firstChild);
    }
    return region;
  }
  function errorRegion(form) {
    return regionIn(form, "[data-error]");
  }
  function pageRegion() {
    return regionIn(document.getElementById("main") || document.body, ":scope > [data-error]");
  }
  // the server's error box (templates/error.html), or a plain one for other answers
  function errorBox(xhr) {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var box = doc.querySelector(".error-box");
    if (box) {
      box = document.importNode(box, true);
      box.removeAttribute("role");  // the region around it is the alert
      return box;
    }
    box = document.createElement("div");
    box.className = "error-box";
    var strong = document.createElement("strong");
    strong.textContent = "Error " + xhr.status + (xhr.statusText ? " · " + xhr.statusText : "");
    box.appendChild(strong);
    // a page's own message (its alert), else the text of a bare answer (not a whole page)
    var alert = doc.querySelector("#main [role=alert]");
    var text = alert ? alert.textContent : doc.querySelector("#main") ? "" :
      (doc.body && doc.body.textContent || "");
    text = text.trim().slice(0, 300);
    if (text) { box.appendChild(document.createTextNode(" " + text)); }
    return box;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var xhr = detail.xhr;
    if (!xhr || xhr.status < 400) { return; }
    // detail.elt is the swap target here; the element that asked is in requestConfig
    var elt = detail.requestConfig ? detail.requestConfig.elt : null;
    var form = elt && elt.closest ? elt.closest("form") : null;
    var verb = detail.requestConfig ? detail.requestConfig.verb : "get";
    detail.isError = false;  // shown on screen: no console error from htmx
    if (!form && verb === "get") {
      // navigation: the error page in place of the page (boosted: the whole page)
      detail.shouldSwap = true;
      if (!detail.boosted && !(detail.requestConfig && detail.requestConfig.boosted)) {
        var main = document.getElementById("main");
        if (main) { detail.target = main; detail.swapOverride = "innerHTML"; }
      }
      return;
    }
    // a form (or a button outside one): the message next to it, the input untouched
    detail.shouldSwap = false;
    var region = form ? errorRegion(form) : pageRegion();
    region.replaceChildren(errorBox(xhr));
    region.hidden = false;
  });
  // a new attempt with the form clears its last message (a field's own request, such
  // as the live preview, does not: the message would vanish while still true)
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target;
    if (!form || form.tagName !== "FORM") { return; }
    var region = form.querySelector("[data-error]");
    if (region) { region.replaceChildren(); region.hidden = true; }
  });
})();
