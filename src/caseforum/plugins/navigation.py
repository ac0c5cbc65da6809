"""The main menu, built like any plugin's menu entries.  The labels are English;
``N_`` puts them in the catalogue and the menu shows them translated (base.html)."""

from typing import Any

from caseforum import hookimpl
from caseforum.authz import ANONYMOUS, can
from caseforum.i18n import N_


@hookimpl
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    viewer = user or ANONYMOUS
    items = [{"label": N_("Home"), "href": "/", "order": "10"},
             {"label": N_("Dossiers"), "href": "/dossiers", "order": "20"},
             {"label": N_("Search"), "href": "/search", "order": "25"}]
    if can(viewer, "forum.view"):
        items.append({"label": N_("Forum"), "href": "/forum", "order": "30"})
    if can(viewer, "stats.view", None):
        items.append({"label": N_("Statistics"), "href": "/stats", "order": "60"})
    if can(viewer, "admin.view"):
        items.append({"label": N_("Admin"), "href": "/admin", "order": "90"})
    return items
