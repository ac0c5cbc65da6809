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
})();
