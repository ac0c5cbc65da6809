"""Every hook CaseForum calls, one documented stub each.

Hooks take keyword arguments only (pluggy passes them by name), so a plugin
may accept just the arguments it needs.  ``docs/plugin_hooks.md`` documents
each one with an example; ``tests/test_hookspecs.py`` fails when a hook here
lacks documentation or a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from caseforum import hookspec
from caseforum.sources import DossierSource

if TYPE_CHECKING:
    from caseforum.channels import NotificationChannel


@hookspec
def register_dossier_sources(config: dict[str, Any], data_dir: Path | None
                             ) -> list[DossierSource]:
    """Return dossier sources, each answering :class:`caseforum.sources.DossierSource`
    (``name``, ``lookup(number, *, office=None)``, ``fetch_dossier(ref)``,
    ``stream_document(ref)``, optionally ``changes_since(cursor)``).  ``config`` is
    the plugin's own validated settings, ``data_dir`` the instance's data folder
    (``None`` when the host was made without one).  The host checks each object at load and
    calls it guarded: a source that breaks is marked unhealthy, not fatal."""


@hookspec
def register_notification_channels() -> list[NotificationChannel]:
    """Return notification channels (:class:`caseforum.channels.NotificationChannel`):
    objects with ``name``, ``label`` and ``deliver(outgoing)``, which sends one
    notification to one user and raises to have it retried.  Users choose channels
    by ``name`` per subscription and per kind of notification."""


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
    by all references of the page (use a key of your own).  A reference with
    ``reference.compact`` set is a dossier carded earlier in the thread, which
    gets a one-line reference rather than the card."""


@hookspec(firstresult=True)
def render_reference(reference: Any, viewer: Any) -> str | None:
    """Return the HTML card for ``reference`` as ``viewer`` may see it, or
    ``None`` to leave it to the next plugin (the first non-None answer wins).
    With ``reference.compact`` set (the dossier was carded earlier in the
    thread), return a one-line reference instead.  Called at most once per
    dossier, form (card or compact) and page, after ``prepare_references``.
    The card is read in the reader's language and zone: render templates from
    ``reference.env`` (compiled for that language) and show times with the
    ``isotime``/``isodate`` filters (the reader's locale is current while the
    hook runs)."""


@hookspec
def register_routes() -> list[Any]:
    """Return FastAPI ``APIRouter`` objects to mount (pages and API)."""


@hookspec
def extra_nav_items(user: Any) -> list[dict[str, str]]:
    """Return menu entries ``{"label": ..., "href": ...}`` for ``user`` (who
    may be ``None`` for an anonymous visitor)."""


@hookspec
def home_panels(session: Any, viewer: Any) -> list[dict[str, Any]]:
    """Return panels for the signed-in home page, each ``{"name", "title",
    "template", "context"}``: the template (from the plugin's templates folder) is
    included with ``panel`` set to ``context``.  Called on every home page view in
    the request's session, so keep it to a query or two; return ``[]`` for a
    viewer the panel is not for."""


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
def register_models() -> list[Any]:
    """Return the modules (or SQLModel classes) that define the plugin's tables,
    imported in this hook rather than when the plugin is loaded: asked only where
    every table must be known (a new database made from the models by ``caseforum
    init``, the models compared with the migrations), so that the tables cost a
    start of the server nothing until the plugin's pages or tasks use them."""


@hookspec
def register_document_types() -> list[Any]:
    """Return extra dossier document types (``DocType`` objects: code, label,
    group, direction, office) to add to the code tables; unknown codes are kept
    anyway, a type only says how to show one."""


@hookspec
def collect_search_items(session: Any, events: list[Any] | None) -> list[dict[str, Any]]:
    """Return the search index items of the plugin's own things that ``events`` (a
    batch of the event log) change, or all of them when ``events`` is ``None`` (a
    rebuild).  Each item is a dict: ``id`` (unique, with a prefix of its own),
    ``kind``, ``title``, ``body``, ``office``, ``date``, ``url``, ``parties`` (the
    offices whose users may find it) and ``scope`` (what an API token needs); or
    ``{"id": ..., "gone": True}`` to take an item out."""


@hookspec
def register_storage_backends() -> list[Any]:
    """Return storage backend factories: objects with ``name`` (the value of the
    ``[storage] backend`` setting that picks it) and ``open(settings)``, which returns
    a :class:`caseforum.storage_backends.StorageBackend` (content-addressed ``put``,
    streamed ``iter_bytes``, ``discard``, sweeping, blobs for ICE parcels, ``check``
    for ``/readyz`` and ``prepare`` for ``caseforum init``).  The first factory of the
    configured name is used; the built-in ``object_storage`` plugin registers ``local``
    and ``s3``."""
