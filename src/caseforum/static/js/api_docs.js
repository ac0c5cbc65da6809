// The API docs page (/api/v1/docs): Swagger UI from /static/vendor, started from this
// file because the CSP allows no inline script.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({
    url: document.body.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    // no deep links: they put a link inside each operation's toggle button, a control
    // inside a control that screen readers cannot reach (axe: nested-interactive)
    deepLinking: false,
  });
});
