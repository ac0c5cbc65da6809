"""Plugin entry point (group ``caseforum``): settings under ``plugins.ice_exchange``.

Secure exchange of examination work between a recipient office and a donor
office: workflow, parcels, transfer routes, audit, pages, API and commands. The
modules are small and single-purpose; this one only wires them to CaseForum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caseforum import hookimpl
from caseforum.authz import can

from . import models, rules  # noqa: F401  (tables and ice.* authorization rules)
from .config import Config

__all__ = ["Config"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@hookimpl
def register_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def register_routes() -> list[Any]:
    from . import api, pages

    return [api.router, api.content_router, pages.router]


@hookimpl
def collect_search_items(session: Any, events: list[Any] | None) -> list[dict[str, Any]]:
    from .search import exchange_items

    return exchange_items(session, events)


@hookimpl
def register_transfer_routes() -> list[Any]:
    from .routes import all_routes

    return all_routes()


@hookimpl
def register_commands(cli: Any) -> None:
    from .cli import register

    register(cli)


@hookimpl
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    if not can(user, "ice.exchanges.list"):
        return []
    # "order" is a hint for a menu that sorts (UI.md: after Forum, before Statistics).
    return [{"label": "Exchanges", "href": "/ice", "order": "40"}]


@hookimpl
def startup(app: Any) -> None:
    """Start the delivery loop (in processes that run background consumers)."""
    if not app.state.settings.run_consumers:
        return
    from .api import runtime
    from .delivery import DeliveryLoop

    loop = DeliveryLoop(runtime(app))
    loop.start()
    app.state.ice_delivery = loop


@hookimpl
def shutdown(app: Any) -> None:
    loop = getattr(app.state, "ice_delivery", None)
    if loop is not None:
        loop.stop()
        app.state.ice_delivery = None
