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

// Live updates: the htmx ws extension, told where to resume.  A new page (the first
// load or a boosted link) starts from the event its HTML was rendered at (its
// ws-connect "after="); a reconnect of the same page from the last event it got, so
// the server resends exactly what was missed, and nothing the page already shows.
(function () {
  "use strict";
  var lastEventId = 0;
  var pageSocket = null;  // the [data-live] element whose events lastEventId counts
  function afterOf(elt) {
    var m = /[?&]after=(\d+)/.exec(elt.getAttribute("ws-connect") || "");
    return m ? parseInt(m[1], 10) : 0;
  }
  if (window.htmx && htmx.createWebSocket) {
    var create = htmx.createWebSocket;
    htmx.createWebSocket = function (url) {
      var live = document.querySelector("[data-live]");
      if (live && live !== pageSocket) {
        pageSocket = live;
        lastEventId = afterOf(live);
      } else if (lastEventId) {
        url = url.replace(/([?&]after=)\d+/, "$1" + lastEventId);
      }
      return create(url);
    };
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
    var code = event.detail.event ? event.detail.event.code : 0;
    if (code === 4410) { window.location.reload(); }
    if (code === 4401) { signedOut(); }
  });
  // The server closed the live socket because this log-in ended (logged out elsewhere,
  // the session expired, the account was disabled): live updates have stopped.  Say
  // so at the top of the page, with a log-in link back to this page, and reload
  // nothing, so a draft in a composer is not lost.
  function signedOut() {
    var template = document.getElementById("signed-out-notice");
    if (!template || document.querySelector("[data-signed-out]")) { return; }
    var notice = template.content.firstElementChild.cloneNode(true);
    notice.setAttribute("data-signed-out", "");
    var here = window.location.pathname + window.location.search;
    var link = notice.querySelector("[data-login-link]");
    if (link && here !== "/") { link.href = "/login?next=" + encodeURIComponent(here); }
    var frame = document.querySelector(".frame");
    if (frame) { frame.before(notice); } else { document.body.prepend(notice); }
  }
  window.caseforumLastEventId = function () { return lastEventId; };
})();

// Live thread lists.  The forum socket sends a thread's row as a plain
// [data-live-row] block (not an hx-swap-oob fragment: a bare <tr> does not survive
// htmx's fragment parser, and a list missing from the page would be a console error).
// This extension takes such blocks out of each message before the ws extension swaps
// the rest, and puts the row in every list of the page that shows the thread:
//   [data-live-list="category"][data-category=N]  threads of category N
//   [data-live-list="private"]                    private conversations
//   [data-live-list="unread"]                     threads with unread posts (data-limit)
// in the order the server lists them (pinned first where data-pinned-first, then the
// latest activity), dropping it where it no longer belongs.  The forum index's
// category rows ([data-category-row]) keep their thread and unread totals, and the home
// page's "For you" list (#for-you) is replaced by the copy sent with the bell.
(function () {
  "use strict";
  if (!window.htmx) { return; }
  function comesBefore(a, b, pinnedFirst) {
    if (pinnedFirst) {
      var pa = a.hasAttribute("data-pinned"), pb = b.hasAttribute("data-pinned");
      if (pa !== pb) { return pa; }
    }
    var la = a.getAttribute("data-last") || "", lb = b.getAttribute("data-last") || "";
    if (la !== lb) { return la > lb; }
    return parseInt(a.getAttribute("data-thread"), 10) > parseInt(b.getAttribute("data-thread"), 10);
  }
  function insertInOrder(list, row) {
    var rows = list.querySelectorAll(":scope > [data-thread]");
    var pinnedFirst = list.hasAttribute("data-pinned-first");
    for (var i = 0; i < rows.length; i++) {
      if (comesBefore(row, rows[i], pinnedFirst)) { list.insertBefore(row, rows[i]); return; }
    }
    if (rows.length) { rows[rows.length - 1].after(row); } else { list.prepend(row); }
  }
  function belongs(list, info) {
    switch (list.getAttribute("data-live-list")) {
      case "category": return !info.isPrivate && info.category === list.getAttribute("data-category");
      case "private": return info.isPrivate;
      case "unread": return info.unread > 0;
      default: return false;
    }
  }
  function tidy(list) {
    var limit = parseInt(list.getAttribute("data-limit") || "0", 10);
    var rows = list.querySelectorAll(":scope > [data-thread]");
    for (var i = limit; limit && i < rows.length; i++) { rows[i].remove(); }
    var empty = list.querySelector(":scope > [data-empty]") ||
      (list.parentElement && list.parentElement.querySelector(":scope > [data-empty]"));
    if (empty) { empty.hidden = rows.length > 0; }
  }
  function updateCategoryTotals(info) {
    document.querySelectorAll('[data-category-row="' + info.category + '"]').forEach(function (row) {
      var counts = {};
      (row.getAttribute("data-unread-map") || "").trim().split(/\s+/).forEach(function (pair) {
        var parts = pair.split(":");
        if (parts.length === 2) { counts[parts[0]] = parseInt(parts[1], 10) || 0; }
      });
      if (info.unread) { counts[info.id] = info.unread; } else { delete counts[info.id]; }
      var total = 0, pairs = [];
      Object.keys(counts).forEach(function (key) { total += counts[key]; pairs.push(key + ":" + counts[key]); });
      row.setAttribute("data-unread-map", pairs.join(" "));
      var cell = row.querySelector("[data-unread-total]");
      if (cell) {
        if (total) {
          var chip = document.createElement("span");
          chip.className = "chip unread";
          chip.textContent = String(total);
          cell.replaceChildren(chip);
        } else {
          cell.textContent = "—";
        }
      }
      var count = row.querySelector("[data-thread-count]");
      if (count && info.isNew) { count.textContent = String((parseInt(count.textContent, 10) || 0) + 1); }
    });
  }
  function placeRow(block) {
    var info = {
      id: block.getAttribute("data-live-row"),
      category: block.getAttribute("data-category") || "",
      isPrivate: block.hasAttribute("data-private"),
      isNew: block.hasAttribute("data-new"),
      unread: parseInt(block.getAttribute("data-unread") || "0", 10) || 0
    };
    var shapes = { TBODY: block.querySelector("tr"), UL: block.querySelector("li") };
    document.querySelectorAll("[data-live-list]").forEach(function (list) {
      var old = list.querySelector(':scope > [data-thread="' + info.id + '"]');
      if (old) { old.remove(); }
      var shape = shapes[list.tagName];
      if (shape && belongs(list, info)) {
        var row = shape.cloneNode(true);
        insertInOrder(list, row);
        htmx.process(row);  // boosted links, like the rest of the page
      }
      tidy(list);
    });
    if (info.category) { updateCategoryTotals(info); }
  }
  function placeNotes(block) {
    var target = document.getElementById("for-you");
    if (target) {
      target.replaceChildren.apply(target, Array.prototype.slice.call(block.childNodes));
      htmx.process(target);
    }
  }
  htmx.defineExtension("live-lists", {
    transformResponse: function (text, xhr) {
      if (xhr || text.indexOf("data-live-") === -1) { return text; }  // not a live message
      var box = document.createElement("template");
      box.innerHTML = text;
      // only the server's own top-level blocks: never anything inside a post
      Array.prototype.slice.call(box.content.children).forEach(function (block) {
        if (block.hasAttribute("data-live-row")) { placeRow(block); block.remove(); }
        else if (block.hasAttribute("data-live-notes")) { placeNotes(block); block.remove(); }
      });
      return box.innerHTML;
    }
  });
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

// @mention completion in boxes marked data-mentions: typing @ and a letter or two
// lists the matching users (from /forum/people) under the box; arrow keys move,
// Enter or Tab takes the highlighted name, Escape closes the list.
(function () {
  "use strict";
  var TYPED = /(^|[^\w@\/.])@([a-z0-9][a-z0-9._-]{0,63})$/i;  // an @name left of the caret
  var open = null;  // {box, list, items, active, start}
  var timer = null;
  var asked = 0;  // answers to older questions are dropped
  function typed(box) {
    if (box.selectionStart !== box.selectionEnd) { return null; }
    var m = TYPED.exec(box.value.slice(0, box.selectionStart));
    return m ? { start: box.selectionStart - m[2].length - 1, prefix: m[2] } : null;
  }
  function close() {
    if (!open) { return; }
    open.list.remove();
    open.box.removeAttribute("aria-activedescendant");
    open.box.removeAttribute("aria-controls");
    open = null;
  }
  function highlight(index) {
    open.active = index;
    open.items.forEach(function (li, k) { li.setAttribute("aria-selected", k === index ? "true" : "false"); });
    open.box.setAttribute("aria-activedescendant", open.items[index].id);
  }
  function show(box, at, people) {
    close();
    if (!people.length) { return; }
    var list = document.createElement("ul");
    list.id = box.id + "-people";
    list.className = "mention-list";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "People to mention");
    var items = people.map(function (person, i) {
      var li = document.createElement("li");
      li.id = list.id + "-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("data-username", person.username);
      var name = document.createElement("strong");
      name.textContent = "@" + person.username;
      var who = document.createElement("span");
      who.className = "muted";
      who.textContent = person.label + " · " + person.office;
      li.append(name, who);
      list.appendChild(li);
      return li;
    });
    box.insertAdjacentElement("afterend", list);
    box.setAttribute("aria-controls", list.id);
    open = { box: box, list: list, items: items, active: 0, start: at.start };
    highlight(0);
  }
  function take(li) {
    var box = open.box;
    var text = "@" + li.getAttribute("data-username") + " ";
    box.value = box.value.slice(0, open.start) + text + box.value.slice(box.selectionStart);
    var caret = open.start + text.length;
    close();
    box.focus();
    box.setSelectionRange(caret, caret);
    box.dispatchEvent(new Event("input", { bubbles: true }));  // the preview follows
  }
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-mentions]")) { return; }
    var at = typed(box);
    var mine = ++asked;
    window.clearTimeout(timer);
    if (!at) { close(); return; }
    timer = window.setTimeout(function () {
      fetch("/forum/people?q=" + encodeURIComponent(at.prefix), { headers: { Accept: "application/json" } })
        .then(function (answer) { return answer.ok ? answer.json() : []; })
        .then(function (people) {
          var now = typed(box);
          if (mine === asked && now && document.activeElement === box) { show(box, now, people); }
        })
        .catch(function () { close(); });
    }, 150);
  });
  document.addEventListener("keydown", function (event) {
    if (!open || event.target !== open.box) { return; }
    var n = open.items.length;
    if (event.key === "ArrowDown") { highlight((open.active + 1) % n); }
    else if (event.key === "ArrowUp") { highlight((open.active + n - 1) % n); }
    else if (event.key === "Enter" || event.key === "Tab") { take(open.items[open.active]); }
    else if (event.key === "Escape") { close(); }
    else { return; }
    event.preventDefault();
    event.stopPropagation();  // Enter takes the name: it neither sends nor breaks the line
  }, true);
  document.addEventListener("mousedown", function (event) {
    var li = open && event.target.closest ? event.target.closest(".mention-list [role=option]") : null;
    if (li) { event.preventDefault(); take(li); }  // the box keeps the focus
  });
  document.addEventListener("focusout", function (event) {
    if (open && event.target === open.box) { close(); }
  });
})();

// Chat view.  The log (#posts.chat, its own scroll box) opens at the newest message and
// follows new ones while the reader is at the bottom; a reader who scrolled up keeps
// their place and gets a "New messages" button that jumps down.  The composer sends
// with Enter; Shift+Enter starts a new line (and Enter that ends an IME composition,
// as in Chinese, Japanese or Korean input, only ends the composition).
(function () {
  "use strict";
  var NEAR = 40;  // px from the bottom that still count as "at the bottom"
  var following = true;
  function chatLog() { return document.querySelector("#posts.chat"); }
  function newButton() { return document.querySelector("[data-chat-new]"); }
  function atBottom(log) { return log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR; }
  function toBottom(log) {
    log.scrollTop = log.scrollHeight;
    following = true;
    var button = newButton();
    if (button) { button.hidden = true; }
  }
  function setUp() {
    var log = chatLog();
    if (!log || log.hasAttribute("data-chat-ready")) { return; }
    log.setAttribute("data-chat-ready", "");
    toBottom(log);
    log.addEventListener("scroll", function () {
      following = atBottom(log);
      if (following) { var button = newButton(); if (button) { button.hidden = true; } }
    });
  }
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:load", setUp);
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var log = chatLog();
    if (!log || event.detail.message.indexOf("beforeend:#posts") === -1) { return; }
    if (following) {
      toBottom(log);
    } else {
      var button = newButton();
      if (button) { button.hidden = false; }
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-chat-new]");
    var log = chatLog();
    if (button && log) { toBottom(log); }
  });
  // what the reader sends is shown to them, wherever they had scrolled
  document.addEventListener("submit", function (event) {
    var log = chatLog();
    if (log && event.target.id === "composer") { toBottom(log); }
  });
  function fit(box) { box.rows = Math.min(6, Math.max(1, box.value.split("\n").length)); }
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || !box.matches || !box.matches("textarea[data-enter-sends]")) { return; }
    if (event.shiftKey || event.isComposing || event.keyCode === 229) { return; }
    event.preventDefault();
    if (box.value.trim() && box.form) { box.form.requestSubmit(); }
  });
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (box.matches && box.matches("textarea[data-enter-sends]")) { fit(box); }
  });
  document.addEventListener("reset", function (event) {
    var box = event.target.querySelector && event.target.querySelector("textarea[data-enter-sends]");
    if (box) { window.setTimeout(function () { fit(box); }, 0); }
  });
})();
