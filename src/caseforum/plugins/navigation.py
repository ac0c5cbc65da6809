"""The main menu, built like any plugin's menu entries."""

from typing import Any

from caseforum import hookimpl
from caseforum.authz import can


@hookimpl
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    items = [{"label": "Home", "href": "/"}]
    if can(user, "admin.view"):
        items.append({"label": "Admin", "href": "/admin"})
    return items
