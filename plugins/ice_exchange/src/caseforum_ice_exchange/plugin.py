"""Plugin entry point (group ``caseforum``): settings under ``plugins.ice_exchange``.

Secure exchange of examination work between a recipient office and a donor
office: workflow, parcels, transfer routes, audit, pages, API and commands. The
modules are small and single-purpose; this one only wires them to CaseForum.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from caseforum import hookimpl
from caseforum.authz import can
from caseforum.i18n import Catalogue, Msg

from . import rules  # noqa: F401  (the ice.* authorization rules)
from .config import Config

__all__ = ["Config"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCALE = Path(__file__).resolve().parent / "locale"
DOMAIN = "caseforum_ice_exchange"


@hookimpl
def register_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def register_models() -> list[Any]:
    """The tables, imported by the modules that use them, not when the plugin loads."""
    from . import models

    return [models]


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
    return [{"label": Msg("Exchanges"), "href": "/ice", "order": "40"}]


@hookimpl
def register_translations() -> list[Catalogue]:
    """The plugin's own catalogues (``locale/<language>/LC_MESSAGES``)."""
    return [Catalogue(LOCALE, DOMAIN)]


@hookimpl
def home_panels(session: Any, viewer: Any) -> list[dict[str, Any]]:
    from .home import waiting_panel

    panel = waiting_panel(session, viewer)
    return [panel] if panel else []


@hookimpl
def startup(app: Any) -> None:
    """Start the delivery loop (in processes that run background consumers), a moment
    after the app is up: its imports (signatures, encryption, HTTP) need not delay the
    first answer."""
    if not app.state.settings.run_consumers:
        return

    def begin() -> None:
        from .api import runtime
        from .delivery import DeliveryLoop

        loop = DeliveryLoop(runtime(app))
        loop.start()
        app.state.ice_delivery = loop

    try:
        app.state.ice_delivery_start = asyncio.get_running_loop().call_later(0.2, begin)
    except RuntimeError:  # called outside the event loop: start at once
        begin()


@hookimpl
def shutdown(app: Any) -> None:
    pending = getattr(app.state, "ice_delivery_start", None)
    if pending is not None:
        pending.cancel()  # stopped before it began
    loop = getattr(app.state, "ice_delivery", None)
    if loop is not None:
        loop.stop()
        app.state.ice_delivery = None
