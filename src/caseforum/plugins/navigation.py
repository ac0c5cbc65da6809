"""The main menu, built like any plugin's menu entries."""

from typing import Any

from caseforum import hookimpl
from caseforum.authz import ANONYMOUS, can


@hookimpl
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    viewer = user or ANONYMOUS
    items = [{"label": "Home", "href": "/", "order": "10"},
             {"label": "Dossiers", "href": "/dossiers", "order": "20"},
             {"label": "Search", "href": "/search", "order": "25"}]
    if can(viewer, "forum.view"):
        items.append({"label": "Forum", "href": "/forum", "order": "30"})
    if can(viewer, "stats.view", None):
        items.append({"label": "Statistics", "href": "/stats", "order": "60"})
    if can(viewer, "admin.view"):
        items.append({"label": "Admin", "href": "/admin", "order": "90"})
    return items
