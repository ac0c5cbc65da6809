"""JSON API under ``/api/v1/ice`` and the peer inbox.

Every answer to bad input is a 4xx with ``{"detail": ..., "code": ...}``. Upload
handlers are ``async`` only to read the multipart body under a size limit; all
database and crypto work runs in the thread pool.
"""

import functools
import json
import logging
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from caseforum import errors
from caseforum.authz import require
from caseforum.db import SessionDep
from caseforum.models import Office, User
from caseforum.web.content import content_response, link_refusal, signed_url, viewer_for
from caseforum.web.deps import CurrentUser, CurrentViewer

from . import delivery, keys, parcels, views, workflow
from .audit import append_audit, timeline
from .config import PLUGIN_NAME, IceRuntime
from .crypto import IceCryptoError
from .errors import IceError, NotFound, Refused
from .inbox import Envelope, receive, record_refusal
from .models import IceParcel

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/ice", tags=["ice"])
content_router = APIRouter()  # signed links, answered on the content host (web/content.py)
FORM_OVERHEAD = 1024 * 1024  # multipart boundaries, fields and the manifest
_PART_NAME = re.compile(r"^(note|[0-9]{1,3})$")


def runtime(app: Any) -> IceRuntime:
    """The plugin's runtime for this app (made on first use, then kept on app.state)."""
    rt = getattr(app.state, "ice_runtime", None)
    if rt is None:
        plugins = app.state.plugins
        rt = IceRuntime.build(engine=app.state.engine, settings=app.state.settings,
                              plugin_config=plugins.config(PLUGIN_NAME),
                              routes=plugins.transfer_routes(), broker=app.state.broker,
                              backend=getattr(app.state, "store", None))
        app.state.ice_runtime = rt
    return rt


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_jsonable(data), status_code=status)


def _too_big(request: Request, rt: IceRuntime) -> bool:
    length = request.headers.get("content-length")
    try:
        return length is not None and int(length) > rt.max_parcel_bytes + FORM_OVERHEAD
    except ValueError:
        return True


async def read_form(request: Request, rt: IceRuntime) -> FormData:
    """The multipart body, refused early (413) when its declared length is over the limit."""
    if _too_big(request, rt):
        raise IceError(f"the upload is larger than the limit of {rt.config.max_parcel_mb} MB",
                       code="oversize", status=413)
    try:
        return await request.form(max_files=parcels.MAX_FILES + 1, max_fields=50)
    except MultiPartException as exc:
        raise IceError(f"unreadable multipart body: {exc.message}", code="malformed") from None


def uploads_of(form: FormData) -> list[parcels.Upload]:
    found = []
    for key, value in form.multi_items():
        if key in ("file", "files") and isinstance(value, UploadFile) and (
                value.filename or value.size):
            found.append(parcels.Upload(name=value.filename or "document",
                                        media_type=value.content_type or "",
                                        stream=value.file))  # type: ignore[arg-type]
    return found


def _text(form: FormData | dict[str, Any], name: str, default: str = "") -> str:
    value = form.get(name, default)
    return value if isinstance(value, str) else default


async def request_fields(request: Request, rt: IceRuntime
                         ) -> tuple[dict[str, Any], FormData | None]:
    """JSON object or multipart form: the fields, and the form (for its files)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data") or ctype.startswith(
            "application/x-www-form-urlencoded"):
        form = await read_form(request, rt)
        return {k: v for k, v in form.items() if isinstance(v, str)}, form
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: too deep
        raise IceError("send a JSON object or a multipart form", code="malformed") from None
    if not isinstance(body, dict):
        raise IceError("send a JSON object", code="malformed")
    return body, None


async def in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def deliver_if_synchronous(rt: IceRuntime, parcel: IceParcel) -> None:
    """Hosted parcels are delivered before the answer; others go to the delivery loop."""
    route = rt.routes.get(parcel.route)
    if route is not None and getattr(route, "synchronous", False):
        delivery.deliver(rt, parcel.id)


def _body(fields: dict[str, Any], *, files: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a handler that reads its own body: the same fields as a JSON
    object or as a multipart form (plus documents as ``file`` parts), so clients and the
    fuzzer see what to send."""
    schema = {"type": "object", "properties": fields}
    multipart = {"type": "object", "properties": {
        **fields, **({"file": {"type": "array", "items": {"type": "string",
                                                         "format": "binary"}}}
                     if files else {})}}
    return {"requestBody": {"content": {"application/json": {"schema": schema},
                                        "multipart/form-data": {"schema": multipart}}}}


_TEXT = {"type": "string", "maxLength": 2000}
_REQUEST_FIELDS = {
    "donor_office": {"type": "string", "examples": ["JP"]},
    "application": {"type": "string", "examples": ["JP 2017-187096"]},
    "kind": {"type": "string", "enum": ["search", "written_opinion", "examination"]},
    "due_date": {"type": "string", "format": "date"},
    "message": _TEXT,
    "route": {"type": "string", "enum": ["hosted", "webservice"]},
}
_STEP_FIELDS = {
    "kind": {"type": "string", "enum": ["documents", "accept", "decline", "start", "report",
                                        "acknowledge", "close"]},
    "message": _TEXT,
}
_INBOX_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["manifest", "signature"], "properties": {
        "manifest": {"type": "string", "description": "the signed manifest, JSON"},
        "signature": {"type": "string", "description": "base64 Ed25519 signature"},
        "note": {"type": "string", "format": "binary"},
        "0": {"type": "string", "format": "binary"},
    }}}}}}


# Exchanges --------------------------------------------------------------------


@router.get("/exchanges", summary="Exchanges the caller may see")
def list_exchanges(session: SessionDep, viewer: CurrentViewer, show: str = "all") -> Response:
    """The caller's office's exchanges (a platform administrator: all, state only).
    ``show``: ``all``, ``open``, ``closed`` or ``waiting`` (the next move is ours)."""
    require(viewer, "ice.exchanges.list")
    if show not in ("all", "open", "closed", "waiting"):
        raise IceError("show must be all, open, closed or waiting", status=422)
    return ok([views.summary(e, viewer) for e in views.visible_exchanges(session, viewer,
                                                                          show=show)])


def _create(rt: IceRuntime, viewer: Any, user: User, fields: dict[str, Any],
            uploads: list[parcels.Upload]) -> dict[str, Any]:
    with rt.session() as session:
        office = session.get(Office, user.office_code)
        require(viewer, "ice.exchange.create", office)
        due = fields.get("due_date")
        exchange, parcel = workflow.open_request(
            session, rt=rt, user=user, donor_office=str(fields.get("donor_office") or ""),
            application=str(fields.get("application") or ""),
            kind=str(fields.get("kind") or ""),
            due_date=due if isinstance(due, str | type(None)) else str(due),
            message=str(fields.get("message") or ""), uploads=uploads,
            route=str(fields["route"]) if fields.get("route") else None)
    deliver_if_synchronous(rt, parcel)
    with rt.session() as session:
        fresh = session.get(type(exchange), exchange.id)
        assert fresh is not None
        return views.detail(session, rt, fresh, viewer)


async def _with_fields(request: Request, action: Any, *args: Any) -> Response:
    """Read JSON or multipart fields (and uploads), run ``action(rt, *args, fields,
    uploads)`` in a worker thread, and answer 201 or the refusal; the spooled
    upload files are closed whatever happens."""
    rt = runtime(request.app)
    form = None
    try:
        fields, form = await request_fields(request, rt)
        uploads = uploads_of(form) if form is not None else []
        data = await in_thread(action, rt, *args, fields, uploads)
    finally:
        if form is not None:
            await form.close()
    return ok(data, status=201)


@router.post("/exchanges", status_code=201, summary="Ask a donor office for help",
             openapi_extra=_body(_REQUEST_FIELDS))
async def create_exchange(request: Request, viewer: CurrentViewer, user: CurrentUser
                          ) -> Response:
    """Open a request. JSON or multipart fields: ``donor_office``, ``application``
    (any usual form, e.g. ``JP 2017-187096``), ``kind`` (``search``,
    ``written_opinion``, ``examination``), ``due_date`` (YYYY-MM-DD, optional),
    ``message``, ``route`` (optional: ``hosted`` or ``webservice``); multipart may
    add documents as ``file`` parts."""
    return await _with_fields(request, _create, viewer, user)


@router.get("/exchanges/{exchange_id}", summary="One exchange with its parcels")
def get_exchange(request: Request, session: SessionDep, viewer: CurrentViewer,
                 exchange_id: str) -> Response:
    require(viewer, "ice.exchanges.list")
    rt = runtime(request.app)
    exchange = views.get_exchange(session, viewer, exchange_id, content=False)
    return ok(views.detail(session, rt, exchange, viewer))


def _step(rt: IceRuntime, viewer: Any, user: User, exchange_id: str, fields: dict[str, Any],
          uploads: list[parcels.Upload]) -> dict[str, Any]:
    with rt.session() as session:
        exchange = views.get_exchange(session, viewer, exchange_id)
        require(viewer, "ice.exchange.act", exchange)
        parcel = workflow.take_step(session, rt=rt, user=user, exchange_id=exchange.id,
                                    kind=str(fields.get("kind") or "documents"),
                                    message=str(fields.get("message") or ""), uploads=uploads)
    deliver_if_synchronous(rt, parcel)
    with rt.session() as session:
        fresh = session.get(IceParcel, parcel.id)
        assert fresh is not None
        return views.parcel_view(session, rt, fresh, viewer, content=True)


@router.post("/exchanges/{exchange_id}/parcels", status_code=201,
             summary="Send documents or a workflow step", openapi_extra=_body(_STEP_FIELDS))
async def post_parcel(request: Request, viewer: CurrentViewer, user: CurrentUser,
                      exchange_id: str) -> Response:
    """Multipart (or JSON without files): ``kind`` (``documents`` by default; or
    ``accept``, ``decline``, ``start``, ``report``, ``acknowledge``, ``close``),
    ``message``, and documents as ``file`` parts. Every step travels as a signed,
    encrypted parcel."""
    return await _with_fields(request, _step, viewer, user, exchange_id)


@router.post("/exchanges/{exchange_id}/assign", summary="Assign the exchange in one's office")
def assign(request: Request, session: SessionDep, viewer: CurrentViewer, user: CurrentUser,
           exchange_id: str, body: dict[str, Any]) -> Response:
    """``{"assignee": "username"}``; an empty name clears it. Office administrators
    assign anyone of their office; examiners may take it on themselves."""
    exchange = views.get_exchange(session, viewer, exchange_id)
    require(viewer, "ice.exchange.act", exchange)
    workflow.assign(session, user=user, viewer=viewer, exchange_id=exchange.id,
                    assignee=str(body.get("assignee") or ""))
    return ok(views.summary(exchange, viewer))


@router.get("/exchanges/{exchange_id}/audit", summary="Audit trail of one exchange")
def exchange_audit(session: SessionDep, viewer: CurrentViewer, exchange_id: str) -> Response:
    """Entries of the caller's office's hash-chained audit log about this exchange."""
    exchange = views.get_exchange(session, viewer, exchange_id)
    rows = timeline(session, exchange_id=exchange.id, chains_={viewer.office_code or ""})
    return ok([{"chain": r.chain, "seq": r.seq, "at": r.at, "action": r.action,
                "actor": r.actor, "parcel_id": r.parcel_id, "detail": r.detail,
                "hash": r.hash} for r in rows])


# Files ------------------------------------------------------------------------


def _open_file(rt: IceRuntime, viewer: Any, user: User, parcel_id: str, name: str, *,
               audit: bool = True) -> tuple[dict[str, Any], Any]:
    """The file's entry and its plaintext (decrypted lazily), after every check;
    ``audit=False`` only checks, for a link that sends the browser elsewhere."""
    with rt.session() as session:
        parcel = session.get(IceParcel, parcel_id) if len(parcel_id) <= 36 else None
        if parcel is None:
            raise NotFound("no such parcel")
        views.get_exchange(session, viewer, parcel.exchange_id)
        entry = next((f for f in parcel.files if f["name"] == name), None)
        if entry is None:
            raise NotFound(f"the parcel has no file named {name!r}")
        if not views.readable_by(parcel, viewer.office_code):
            raise IceError("the parcel has not been verified yet", code="not_verified",
                           status=409)
        own = keys.private_keys(session, office_code=viewer.office_code, secret=rt.secret) \
            if keys.is_local(session, viewer.office_code) else None
        if own is None:
            raise IceError(f"this instance does not hold {viewer.office_code}'s keys: open the "
                           "file on your office's own instance", code="no_keys", status=409)
        file_key = parcels.file_key_for(entry, keys=own,
                                        as_sender=viewer.office_code == parcel.sender_office)
        if audit:
            append_audit(session, chain=viewer.office_code, action="file.opened",
                         actor=workflow.actor_label(user), exchange_id=parcel.exchange_id,
                         parcel_id=parcel.id, detail=f"{name} ({entry['size']} bytes)")
            session.commit()
        opener = rt.part_opener(parcel.id, str(parcel.files.index(entry)))
    return entry, parcels.iter_plaintext(opener, file_key)


@router.get("/parcels/{parcel_id}/files/{name}", summary="A parcel file, decrypted")
async def get_file(request: Request, viewer: CurrentViewer, user: CurrentUser,
                   parcel_id: str, name: str) -> Response:
    """The decrypted document, streamed; only for the two offices' users, and for the
    receiving office only after the parcel was verified. Each opening is audited.

    With a content host configured, a browser (session) is sent there with a signed
    link instead, and the file is opened (and audited) when that link is used."""
    rt = runtime(request.app)
    settings = request.app.state.settings
    elsewhere = bool(settings.content_base_url) and request.state.auth_kind == "session"
    entry, chunks = await in_thread(_open_file, rt, viewer, user, parcel_id, name,
                                    audit=not elsewhere)
    if elsewhere:
        return RedirectResponse(signed_url(settings, "ice", f"{parcel_id}/{name}",
                                           user.id or 0), status_code=303)
    return await _sandboxed(request, parcel_id, entry, chunks, inline=True)


async def _sandboxed(request: Request, parcel_id: str, entry: dict[str, Any], chunks: Any, *,
                     inline: bool) -> Response:
    # the sender's declared type is ignored: the bytes decide, sandboxed (web/content.py)
    try:
        return await in_thread(  # reads the first bytes to tell the type
            content_response, chunks, filename=entry["name"], inline=inline,
            size=entry["size"], settings=request.app.state.settings,
            headers={"Cache-Control": "private, no-store", "X-Content-SHA256": entry["sha256"]})
    except IceCryptoError:
        log.warning("parcel %s: file %r failed authentication", parcel_id, entry["name"])
        raise IceError("the stored file does not decrypt: it was altered",
                       code="tampered", status=409) from None


def _link_user(rt: IceRuntime, user_id: int) -> tuple[Any, User | None]:
    with rt.session() as session:
        viewer, user = viewer_for(session, user_id)
        if user is not None:
            session.expunge(user)
    return viewer, user


@content_router.get("/content/ice/{parcel_id}/{name}", include_in_schema=False)
async def signed_file(request: Request, viewer: CurrentViewer, parcel_id: str,
                      name: str) -> Response:
    """A parcel file by signed link (the content host's route for ICE files)."""
    grant, refusal = link_refusal(request.app.state.settings, request, "ice",
                                  f"{parcel_id}/{name}", viewer)
    if grant is None:
        return refusal  # type: ignore[return-value]
    rt = runtime(request.app)
    link_viewer, user = await in_thread(_link_user, rt, grant.user_id)
    if user is None:
        raise NotFound("no such parcel")
    entry, chunks = await in_thread(_open_file, rt, link_viewer, user, parcel_id, name)
    return await _sandboxed(request, parcel_id, entry, chunks, inline=not grant.download)


# Keys -------------------------------------------------------------------------


@router.get("/keys", summary="Public keys of the offices hosted here")
def public_keys(session: SessionDep, viewer: CurrentViewer) -> Response:
    """The same records as ``caseforum keys export``, for comparing fingerprints."""
    require(viewer, "ice.exchanges.list")
    return ok([keys.export_keys(session, office_code=code)
               for code in sorted(keys.local_offices(session))])


# Peer inbox -------------------------------------------------------------------


def _refuse(rt: IceRuntime, request: Request, exc: Refused) -> None:
    record_refusal(rt, error=exc, via="webservice",
                   claimed_sender=request.headers.get("x-ice-sender"),
                   claimed_recipient=request.headers.get("x-ice-recipient"),
                   claimed_parcel=request.headers.get("x-ice-parcel"))


class _SpooledPart:
    """Reopens an uploaded part from the start, without closing the spool."""

    def __init__(self, upload: UploadFile) -> None:
        self.upload = upload

    def __call__(self) -> Any:
        spool = self.upload.file
        spool.seek(0)
        return _NoClose(spool)


class _NoClose:
    def __init__(self, f: Any) -> None:
        self.f = f

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)  # type: ignore[no-any-return]

    def __enter__(self) -> "_NoClose":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@router.post("/inbox", summary="Peer inbox: receive a signed, encrypted parcel",
             responses=errors.responses(411), openapi_extra=_INBOX_BODY)
async def peer_inbox(request: Request) -> Response:
    """For other CaseForum instances, not people: a multipart body with ``manifest``
    (JSON), ``signature`` (base64 Ed25519 over the canonical manifest) and one part
    per encrypted file (``note``, ``0``, ``1`` ...). Answers 201 with the signed
    receipt, or a 4xx with ``code`` when the parcel is refused. See the plugin README."""
    rt = runtime(request.app)
    if request.headers.get("content-length") is None:
        raise IceError("send a Content-Length: the inbox needs to know the size first",
                       code="length_required", status=411)
    if _too_big(request, rt):
        refusal = Refused(f"the parcel is larger than this instance accepts "
                          f"({rt.config.max_parcel_mb} MB)", code="oversize", status=413)
        await in_thread(_refuse, rt, request, refusal)
        raise refusal
    form = None
    try:
        try:
            form = await request.form(max_files=parcels.MAX_FILES + 2, max_fields=10)
        except MultiPartException as exc:
            raise Refused(f"unreadable multipart body: {exc.message}", code="malformed",
                          status=400) from None
        raw_manifest = form.get("manifest")
        signature = form.get("signature")
        if not isinstance(raw_manifest, str) or not isinstance(signature, str):
            raise Refused("the parcel needs a 'manifest' and a 'signature' field",
                          code="malformed", status=400)
        try:
            manifest = json.loads(raw_manifest)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise Refused("the manifest is not valid JSON", code="malformed",
                          status=400) from None
        parts: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key in ("manifest", "signature"):
                continue
            if not isinstance(value, UploadFile) or not _PART_NAME.match(key) or key in parts:
                raise Refused(f"unexpected part {key[:40]!r}", code="malformed", status=400)
            parts[key] = _SpooledPart(value)
        envelope = Envelope(manifest=manifest, signature=signature, parts=parts)
    except Refused as exc:
        await in_thread(_refuse, rt, request, exc)
        if form is not None:
            await form.close()
        raise
    try:  # a refusal from receive() was audited there and reaches the caller as a 4xx
        signed = await in_thread(receive, rt, envelope, via="webservice")
    finally:
        await form.close()
    return ok(signed.as_json(), status=201)
