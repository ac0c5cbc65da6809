"""Every hook CaseForum calls, one documented stub each.

Hooks take keyword arguments only (pluggy passes them by name), so a plugin
may accept just the arguments it needs.  ``docs/plugin_hooks.md`` documents
each one with an example; ``tests/test_hookspecs.py`` fails when a hook here
lacks documentation or a test.
"""

from __future__ import annotations

from typing import Any

from caseforum import hookspec


@hookspec
def register_dossier_sources() -> list[Any]:
    """Return dossier sources: objects with ``name``, ``lookup(number)``,
    ``fetch_document(ref)`` and optionally ``poll_changes(since)``."""


@hookspec
def register_notification_channels() -> list[Any]:
    """Return notification channels: objects with ``name`` and
    ``deliver(notification, user)``."""


@hookspec
def register_transfer_routes() -> list[Any]:
    """Return ICE transfer routes: objects with ``name``, ``send(parcel)`` and
    ``receive(...)``."""


@hookspec
def register_bots() -> list[Any]:
    """Return forum bots: objects with ``name``, ``triggers`` and
    ``handle(post, ctx)``."""


@hookspec
def register_reference_patterns() -> list[Any]:
    """Return patterns that recognise application or publication numbers in
    free text (forum posts, the number box)."""


@hookspec
def prepare_references(references: list[Any], viewer: Any) -> None:
    """Called once per page, before ``render_reference``, with every reference
    the page will card for ``viewer``: load what the cards need in a few batched
    queries (not one per card) and keep it in ``reference.page``, a dict shared
    by all references of the page (use a key of your own)."""


@hookspec(firstresult=True)
def render_reference(reference: Any, viewer: Any) -> str | None:
    """Return the HTML card for ``reference`` as ``viewer`` may see it, or
    ``None`` to leave it to the next plugin (the first non-None answer wins).
    Called at most once per dossier and page, after ``prepare_references``."""


@hookspec
def register_routes() -> list[Any]:
    """Return FastAPI ``APIRouter`` objects to mount (pages and API)."""


@hookspec
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    """Return menu entries ``{"label": ..., "href": ...}`` for ``user`` (who
    may be ``None`` for an anonymous visitor)."""


@hookspec
def on_event(event: Any) -> None:
    """Called once for each event of the durable event log, in order, by the
    plugin-events consumer.  Must be idempotent: delivery is at least once."""


@hookspec
def startup(app: Any) -> None:
    """Called when the web application starts: check configuration, start
    background tasks."""


@hookspec
def shutdown(app: Any) -> None:
    """Called when the web application stops: stop background tasks."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add sub-commands to the ``caseforum`` command: ``cli`` is its
    ``click.Group``; decorate new functions with ``@cli.command()``."""


@hookspec
def register_migrations() -> list[Any]:
    """Return folders of Alembic migration scripts owned by the plugin; each
    folder is a branch of its own (``branch_labels``) applied by
    ``caseforum init``."""


@hookspec
def register_document_types() -> list[Any]:
    """Return extra dossier document types (``DocType`` objects) to add to the
    code list."""


@hookspec
def collect_search_items(session: Any, events: list[Any] | None) -> list[dict[str, Any]]:
    """Return the search index items of the plugin's own things that ``events`` (a
    batch of the event log) change, or all of them when ``events`` is ``None`` (a
    rebuild).  Each item is a dict: ``id`` (unique, with a prefix of its own),
    ``kind``, ``title``, ``body``, ``office``, ``date``, ``url``, ``parties`` (the
    offices whose users may find it) and ``scope`` (what an API token needs); or
    ``{"id": ..., "gone": True}`` to take an item out."""

