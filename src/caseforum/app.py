"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape
from pathlib import Path
from typing import Any, cast

import anyio
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketState

from caseforum import __version__, authcache, errors, i18n, passwords
from caseforum.bots.runner import BotRunner
from caseforum.channels import ChannelHost, DeliveryWorker
from caseforum.config import Settings, load_settings
from caseforum.db import (  # noqa: F401  (disabled_plugins: still importable from here)
    ServerBusy,
    disabled_plugins,
    make_engine,
    open_session,
    request_session,
    unreachable,
)
from caseforum.doccodes import DocTypeRegistry
from caseforum.events import (
    AccountAuditConsumer,
    Consumer,
    ConsumerRunner,
    PluginEventsConsumer,
    make_broker,
    newest_event_id,
)
from caseforum.forum import access as forum_access
from caseforum.forum.hub import Hub
from caseforum.forum.notify import Notifier
from caseforum.plugin_host import PluginHost
from caseforum.search.indexer import SearchIndexer
from caseforum.storage_backends import open_store
from caseforum.sweeper import PeriodicSweep
from caseforum.web import ops, pages
from caseforum.web.content import ContentHostGate
from caseforum.web.deferred import AfterStartUp, DeferredRoutes, RequestsInHand
from caseforum.web.deps import resolve_viewer
from caseforum.web.limits import BodyLimitMiddleware
from caseforum.web.metrics import AppMetrics, RequestMetricsMiddleware
from caseforum.web.proxy import ProxyHeadersMiddleware
from caseforum.web.security import (
    SecurityHeadersMiddleware,
    headers_for,
    verify_csrf,
    with_security_headers,
)
from caseforum.web.templating import make_environment, render

log = logging.getLogger(__name__)
CLOSE_TRY_AGAIN_LATER = 1013  # a websocket close code the browser's ws extension retries
STATIC = Path(__file__).resolve().parent / "static"


def latest_event_id(engine: Any) -> int:
    """Where a page's live socket starts: it was rendered with everything before.

    Asked in the request's own session when there is one (no second connection)."""
    session = request_session()
    if session is not None:
        return _latest_event_id(session)
    with open_session(engine) as own:
        return _latest_event_id(own)


def _latest_event_id(session: Any) -> int:
    return newest_event_id(session)


def build_doc_types(plugins: PluginHost) -> DocTypeRegistry:
    """The code list: every type the plugins register (the defaults are a plugin)."""
    registry = DocTypeRegistry()
    for doc_type in plugins.document_types():
        try:
            registry.register(doc_type)
        except (ValueError, TypeError) as exc:
            log.error("document type refused: %s", exc)
    return registry


def group_of(doc_types: DocTypeRegistry, code: str) -> str:
    """A document code's group (search, examination ...); "other" when unknown."""
    try:
        return str(doc_types.get(code).group)
    except LookupError:
        return "other"


def plugin_gate(host: PluginHost, name: str) -> Any:
    """A disabled plugin's pages answer 404 without a restart."""

    def gate() -> None:
        if not host.is_enabled(name):
            raise errors.NotFound(f"the {name} plugin is switched off")

    return Depends(gate)


def create_app(settings: Settings | None = None, *, plugins: PluginHost | None = None) -> FastAPI:
    settings = settings or load_settings()
    forum_access.configure(settings)  # the forum rules' two settings
    passwords.configure(settings.password_hash_profile)
    engine = make_engine(settings)
    broker = make_broker(settings.redis_url)
    if plugins is None:
        plugins = PluginHost(settings.plugins, data_dir=settings.data_dir)
        plugins.load(disabled=disabled_plugins(engine))
    doc_types = build_doc_types(plugins)
    channel_host = ChannelHost(engine, settings)
    search_dir = settings.data_dir / "search"  # this host's own index (ARCHITECTURE.md 6)
    consumers: list[Consumer] = [
        AccountAuditConsumer(),
        PluginEventsConsumer(lambda event: plugins.on_event(event=event),
                             wanted=plugins.listens_to_events),
        Notifier(engine, plugins.notification_channels,
                 group_of=lambda code: group_of(doc_types, code), host=channel_host),
        BotRunner(engine, plugins.bots, broker=broker, patterns=plugins.reference_patterns,
                  default_language=settings.default_locale),
        SearchIndexer(search_dir, plugins.search_items, doc_types.describe),
    ]
    runner = ConsumerRunner(engine, broker, consumers, keep_days=settings.event_retention_days)
    deliveries = DeliveryWorker(engine, plugins.notification_channels, channel_host, broker)
    after_startup = AfterStartUp()

    async def start_consumers() -> None:
        await runner.start()
        await deliveries.start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_threads(settings)
        await broker.start()
        await app.state.hub.start()
        app.state.metrics.start()  # with several workers: this one's figures to its file
        plugins.startup(app=app)
        sweeping = await app.state.sweeper.start()  # files left by crashed uploads
        # right after the first answers have gone out (web/deferred.py): the routes not
        # needed at once, the event consumers, then what the routes make on first use
        deferred = app.state.deferred_routes
        after_startup.start([(0.05, deferred.load),
                             *([(0.05, start_consumers)] if settings.run_consumers else []),
                             (0.05, deferred.prepare)])
        # a second after start-up, so that readiness does not wait for a full collection
        asyncio.get_running_loop().call_later(1.0, freeze_startup_objects)
        try:
            yield
        finally:
            await after_startup.stop()
            await app.state.sweeper.stop(sweeping)
            plugins.shutdown(app=app)
            await app.state.hub.stop()
            await app.state.metrics.stop()
            await deliveries.stop()
            await runner.stop()
            await broker.stop()
            engine.dispose()

    app = FastAPI(
        title="CaseForum API",
        version=__version__,
        summary="Work sharing between patent offices",
        lifespan=lifespan,
        docs_url=None,  # served by install_api_docs: local assets, no inline script
        responses=errors.API_ERRORS,
        redoc_url=None,
        dependencies=[Depends(resolve_viewer), Depends(verify_csrf)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.broker = broker
    app.state.plugins = plugins
    app.state.consumers = runner
    app.state.search_dir = search_dir
    i18n.add_catalogues(plugins.translations())  # before the templates load any language
    app.state.templates = make_environment(plugins.template_dirs(),
                                           default_locale=settings.default_locale,
                                           default_time_zone=settings.default_time_zone)
    app.state.store = open_store(settings, plugins.storage_backends())
    app.state.sweeper = PeriodicSweep.from_settings(engine, settings, app.state.store)
    app.state.hub = Hub(engine, broker, plugins, app.state.templates,
                        followers=[plugins.follow_switch, authcache.follow])
    app.state.latest_event_id = lambda: latest_event_id(engine)
    app.state.doc_types = doc_types
    app.state.deliveries = deliveries

    app.add_middleware(ContentHostGate)  # inside the headers middleware: its 404 gets them
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_kb * 1024,
                       max_upload_bytes=settings.max_upload_mb * 1024 * 1024)
    app.add_middleware(SecurityHeadersMiddleware)
    app.state.metrics = AppMetrics(app.state)  # /metrics (web/metrics.py)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(ProxyHeadersMiddleware, trusted=settings.trusted_proxies)
    app.add_middleware(RequestsInHand, work=after_startup)  # outermost: sees every request
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for name, folder in plugins.static_dirs().items():
        app.mount(f"/plugins/{name}/static", StaticFiles(directory=folder), name=f"{name}-static")

    app.include_router(pages.router)  # the health check and the home page: at once
    app.include_router(ops.router)  # /metrics and /readyz: at once too
    app.state.deferred_routes = deferred = DeferredRoutes(app, build_routes)
    app.router.routes.append(deferred)  # the rest on first use (web/deferred.py)
    openapi = app.openapi

    def complete_openapi() -> dict[str, Any]:
        deferred.load()
        return errors.describe_errors(openapi())

    app.openapi = complete_openapi  # type: ignore[method-assign]
    _install_error_handlers(app)
    install_busy_handler(app)
    install_database_handler(app)
    return app


def build_routes(app: FastAPI) -> None:
    """Every route but the few made at start-up, in this order; then the plugins'
    (each behind its on/off switch) and the API docs page, not needed at once either."""
    from caseforum.web import (
        admin,
        api,
        auth_pages,
        bots_admin,
        dossier_api,
        dossier_pages,
        feeds_api,
        forum_api,
        forum_pages,
        locale_pages,
        lookup_api,
        notify_api,
        notify_pages,
        search_pages,
        stats_pages,
        ws,
    )

    for router in (auth_pages.router, admin.router, api.router,
                   dossier_pages.router, dossier_api.router, stats_pages.router,
                   forum_pages.router, forum_api.router, ws.router, bots_admin.router,
                   notify_pages.router, notify_api.router, feeds_api.router,
                   lookup_api.router, search_pages.router, locale_pages.router):
        app.include_router(router)
    plugins: PluginHost = app.state.plugins
    for name, router in plugins.routes():
        app.include_router(router, dependencies=[plugin_gate(plugins, name)])
    install_api_docs(app)


#: the collector's thresholds once the app runs (Python's default: 700, 10, 10).  A
#: server with five hundred open websockets holds a few hundred thousand objects that
#: the young generations keep promoting; with the default a full pass over them (50 to
#: 90 ms) came every few seconds and landed in the middle of a post's fan-out.  Collecting
#: the youngest generation after 20,000 new objects instead of 700 makes every pass about
#: thirty times rarer; cyclic garbage waits a little longer, which costs a few megabytes.
GC_THRESHOLDS = (20_000, 10, 10)
_frozen = False


def freeze_startup_objects() -> None:
    """Keep what start-up loaded (modules, routes, templates, plugins: it lives as long
    as the process) out of the garbage collector's full passes, which otherwise stall a
    live fan-out to hundreds of sockets for tens of milliseconds now and then.  Once per
    process, after collecting what is garbage already (an app started again, as tests
    do, must not pin its predecessor's garbage).  The ``caseforum`` command starts
    with the collector off (``caseforum.entry``); it is switched on here."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()



API_DOCS_PATH = "/api/v1/docs"
API_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} · API docs</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/vendor/swagger-ui.css">
  <link rel="stylesheet" href="/static/css/api_docs.css">
  <script src="/static/vendor/swagger-ui-bundle.js" defer></script>
  <script src="/static/js/api_docs.js" defer></script>
</head>
<body data-openapi-url="{openapi_url}">
  <div id="swagger-ui"></div>
</body>
</html>
"""


def install_api_docs(app: FastAPI) -> None:
    """The interactive API docs at ``/api/v1/docs``.  FastAPI's own page loads Swagger UI
    from a CDN and starts it with an inline script, both of which the CSP blocks (a blank
    page); this one serves the assets vendored from the npm lock file and starts Swagger
    UI from ``static/js/api_docs.js``."""
    page = API_DOCS_PAGE.format(title=escape(app.title), openapi_url=escape(app.openapi_url or ""))

    @app.get(API_DOCS_PATH, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(page)


def limit_threads(settings: Settings) -> None:
    """Sync routes and dependencies run in anyio's default thread pool: no more of
    them at once than ``concurrency``, which the connection pool exceeds (db.py)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.concurrency


def install_busy_handler(app: FastAPI) -> None:
    """No request slot within ``db.SLOT_WAIT`` or no free database connection within
    ``db.POOL_TIMEOUT``: answer 503 at once with ``Retry-After`` instead of letting
    requests pile up.  Renders nothing that
    needs the database (there is no connection to be had)."""

    @app.exception_handler(ServerBusy)
    @app.exception_handler(PoolTimeout)
    async def server_busy(request: Request, exc: Exception) -> Response:
        log.warning("busy (%s) on %s %s", type(exc).__name__, request.method, request.url.path)
        detail = "The server is busy; try again in a moment."
        headers = {"Retry-After": "1"}
        if _wants_json(request):
            return JSONResponse({"detail": detail, "code": "unavailable"}, status_code=503,
                                headers=headers)
        return HTMLResponse(f"<!doctype html><title>Busy</title><p>{detail}</p>",
                            status_code=503, headers=headers)


def install_database_handler(app: FastAPI) -> None:
    """The database server cannot be reached (down, restarting, out of connections:
    ``db.unreachable``): answer :class:`errors.DatabaseUnreachable` (503, ``Retry-After``)
    like any error of the family, with one warning line in the log rather than a
    traceback per request.  A websocket handshake (a page's live socket reconnecting)
    is closed with 1013, "try again later", which the browser's ws extension retries
    with back-off.  Any other database error is a bug: re-raised, it reaches the
    last-resort handler and is logged and answered as a 500."""

    @app.exception_handler(DBAPIError)
    async def database_unreachable(conn: HTTPConnection, exc: DBAPIError) -> Response | None:
        if not unreachable(exc):
            raise exc
        reason = (str(exc.orig).strip().splitlines() or [""])[0][:200]
        if isinstance(conn, WebSocket):
            log.warning("database not reachable on websocket %s: %s", conn.url.path, reason)
            with contextlib.suppress(RuntimeError):  # already closed
                if conn.client_state == WebSocketState.CONNECTING:
                    await conn.accept()  # so that the browser gets the code, not a failure
                await conn.close(code=CLOSE_TRY_AGAIN_LATER)
            return None
        request = cast(Request, conn)  # not a websocket: the request being answered
        log.warning("database not reachable on %s %s: %s", request.method,
                    request.url.path, reason)
        error = errors.DatabaseUnreachable()
        return error_response(request, status=error.status, detail=error.message,
                              code=error.code, headers=error.headers, offline=True)


def _wants_json(request: Request) -> bool:
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: Request, *, status: int, detail: Any, code: str,
                   headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None, offline: bool = False) -> Response:
    """The one shape of every error: ``{"detail", "code"}`` for API and JSON callers,
    the error page for browsers (an htmx request gets its fragment), and a log-in
    redirect for a browser ``GET`` that needs a log-in.  ``offline``: the database
    cannot be reached, so the page leaves out what would ask it (the bell, the live
    socket's starting point)."""
    if _wants_json(request):
        return JSONResponse({"detail": detail, "code": code, **(extra or {})},
                            status_code=status, headers=headers)
    anonymous = getattr(request.state, "user", None) is None
    if status == 401 or (status == 404 and anonymous):
        from caseforum.web.auth_pages import login_url  # a deferred router (web/deferred.py)

        login = login_url(request)
        if status == 401 and request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": login})  # htmx: full page
        if status == 401 and request.method == "GET":
            return RedirectResponse(login, status_code=303)
        context = {"status": status, "detail": detail, "login": login}
    else:
        context = {"status": status, "detail": detail}
    context["offline"] = offline
    return render(request, "error.html", context, status_code=status, block="content",
                  headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.CaseForumError)
    async def domain_error(request: Request, exc: errors.CaseForumError) -> Response:
        return error_response(request, status=exc.status, detail=exc.message, code=exc.code,
                              headers=exc.headers, extra=exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, status=exc.status_code, detail=exc.detail,
                              code=errors.code_for(exc.status_code),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path"))
            problems.append(f"{where}: {err['msg']}" if where else err["msg"])
        return error_response(request, status=422, detail="; ".join(problems),
                              code="invalid_input", extra={"errors": problems})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        detail = "Something went wrong on our side; the error has been logged."
        response: Response
        if _wants_json(request):
            response = JSONResponse({"detail": detail, "code": "server_error"}, status_code=500)
        else:
            response = render(request, "error.html", {"status": 500, "detail": detail},
                              status_code=500, block=None)
        # this handler answers from outside every middleware: add the security headers here
        settings = request.app.state.settings
        response.raw_headers = with_security_headers(response.raw_headers,
                                                     headers_for(settings.content_base_url))
        return response
