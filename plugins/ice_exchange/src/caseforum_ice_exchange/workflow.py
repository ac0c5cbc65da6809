"""Sending side of the workflow: open a request, take a step, assign work.

Each step becomes a parcel: the files are encrypted first (no transaction open,
however big they are), then one short transaction allocates the sequence
number, checks the step against the current state, signs the manifest, records
the parcel, moves the exchange on, and appends the audit entry and the event.
Delivery happens afterwards (``delivery``), never inside that transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from caseforum.authz import Viewer, can
from caseforum.events import emit
from caseforum.models import Office, User, utcnow
from caseforum.numbers import NumberError, parse_application_number

from . import crypto, keys, parcels
from .audit import append_audit
from .config import IceRuntime
from .errors import Conflict, IceError, NotFound
from .models import IceExchange, IceParcel
from .states import KINDS, check_step

DONOR_ROLES = ("donor", "both")
RECIPIENT_ROLES = ("recipient", "both")


def actor_label(user: User) -> str:
    return f"{user.username}@{user.office_code}"


def _role(office: Office) -> str:
    return str(getattr(office.ice_role, "value", office.ice_role))


def choose_route(session: Session, rt: IceRuntime, *, sender: str, recipient: str,
                 wanted: str | None) -> str:
    """The named route if it can reach ``recipient``, else the first route that can."""
    if wanted:
        route = rt.routes.get(wanted)
        if route is None:
            known = ", ".join(sorted(rt.routes)) or "none"
            raise IceError(f"unknown transfer route {wanted!r} (available: {known})",
                           code="unknown_route", status=422)
        problem = route.problem(session, sender=sender, recipient=recipient)
        if problem:
            raise IceError(f"route {wanted!r} cannot be used: {problem}",
                           code="route_unusable", status=422)
        return wanted
    problems = []
    for name, route in rt.routes.items():
        problem = route.problem(session, sender=sender, recipient=recipient)
        if problem is None:
            return name
        problems.append(f"{name}: {problem}")
    raise IceError(f"office {recipient} cannot be reached: " + "; ".join(problems or
                   ["no transfer route is installed"]), code="unreachable", status=422)


def _seq_column(side: str) -> str:
    return f"{side}_sent_seq"


def _cleanup(rt: IceRuntime, parcel_id: str | None) -> None:
    if parcel_id is not None:
        rt.forget(parcel_id)


def _refuse_hidden_characters(rt: IceRuntime, uploads: list[parcels.Upload], *, office: str,
                              user: User, exchange_id: str | None = None) -> None:
    """Refuse (422, audited in the sender's chain) a file whose name carries control
    or bidi characters: the name would read differently from what it is."""
    for upload in uploads:
        hidden = parcels.hidden_characters(upload.name)
        if not hidden:
            continue
        shown = upload.name.encode("unicode_escape").decode("ascii")[:200]
        message = (f"the file name {shown!r} contains control or bidi characters "
                   f"({', '.join(hidden)}): rename the file and send it again")
        with rt.session() as audit_session:  # the step itself writes nothing
            append_audit(audit_session, chain=office, action="upload.refused",
                         actor=actor_label(user), exchange_id=exchange_id,
                         detail=f"bad_file_name: {message}")
            audit_session.commit()
        raise IceError(message, code="bad_file_name", status=422)


def _encrypt(rt: IceRuntime, session: Session, *, parcel_id: str, sender: str, recipient: str,
             note: str, uploads: list[parcels.Upload]) -> tuple[Any, Any]:
    recipient_keys = keys.public_keys(session, recipient)
    if recipient_keys is None:
        raise IceError(f"no public keys for office {recipient}: add it as a peer "
                       "('caseforum peers add') or generate its keys", code="no_keys",
                       status=409)
    sender_keys = keys.private_keys(session, office_code=sender, secret=rt.secret)
    folder = rt.parcel_dir(parcel_id)
    note_entry, files = parcels.encrypt_parcel(
        folder=folder, note=note, uploads=uploads, recipient=recipient_keys,
        sender=sender_keys, max_bytes=rt.max_parcel_bytes)
    rt.offload(parcel_id)
    return note_entry, files


def _record_parcel(session: Session, rt: IceRuntime, *, exchange: IceExchange, parcel_id: str,
                   kind: str, sender: str, sequence: int, user: User,
                   note_entry: dict[str, Any] | None, files: list[dict[str, Any]],
                   request: dict[str, Any] | None) -> IceParcel:
    recipient = exchange.other_party(sender)
    created = utcnow()
    manifest = {
        "format": parcels.FORMAT,
        "parcel_id": parcel_id,
        "exchange_id": exchange.id,
        "kind": kind,
        "sender": sender,
        "recipient": recipient,
        "sequence": sequence,
        "created_at": parcels.time_text(created),
        "sent_by": user.label[:120],
        "request": request,
        "note": note_entry,
        "files": files,
    }
    signer = keys.private_keys(session, office_code=sender, secret=rt.secret)
    parcel = IceParcel(
        id=parcel_id, exchange_id=exchange.id, kind=kind, sender_office=sender,
        recipient_office=recipient, sequence=sequence, route=exchange.route,
        manifest=manifest, manifest_sha256=crypto.manifest_digest(manifest),
        signature=crypto.sign_manifest(manifest, signer.signing_key), status="queued",
        sent_by_id=user.id, created_at=created,
    )
    session.add(parcel)
    names = ", ".join(f["name"] for f in files) or "no documents"
    append_audit(session, chain=sender, action=f"parcel.sent.{kind}", actor=actor_label(user),
                 exchange_id=exchange.id, parcel_id=parcel_id,
                 detail=f"sequence {sequence} to {recipient} via {exchange.route}; "
                        f"{len(files)} file(s): {names}"
                        + ("; with a message" if note_entry else ""))
    emit(session, kind="ice.parcel.queued", actor_id=user.id, office_code=sender,
         subject_type="ice_parcel", subject_id=parcel_id,
         payload={"exchange_id": exchange.id, "kind": kind, "recipient_office": recipient,
                  "route": exchange.route})
    return parcel


def _status_event(session: Session, exchange: IceExchange, *, actor_id: int | None,
                  office: str) -> None:
    emit(session, kind=f"ice.exchange.{exchange.status}", actor_id=actor_id, office_code=office,
         subject_type="ice_exchange", subject_id=exchange.id,
         payload={"exchange_id": exchange.id, "status": exchange.status,
                  "recipient_office": exchange.recipient_office,
                  "donor_office": exchange.donor_office, "kind": exchange.kind,
                  # the notifier tells the other office's admins and its assigned examiner
                  "recipient_assignee_id": exchange.recipient_assignee_id,
                  "donor_assignee_id": exchange.donor_assignee_id})


def parse_due_date(value: str | date | None) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        due = value
    else:
        try:
            due = date.fromisoformat(str(value).strip())
        except ValueError:
            raise IceError(f"due date {value!r} is not a date: use YYYY-MM-DD",
                           code="bad_due_date", status=422) from None
    if due < datetime.now(UTC).date():
        raise IceError("the due date is in the past", code="bad_due_date", status=422)
    return due


def open_request(
    session: Session,
    *,
    rt: IceRuntime,
    user: User,
    donor_office: str,
    application: str,
    kind: str,
    due_date: str | date | None = None,
    message: str = "",
    uploads: list[parcels.Upload] | None = None,
    route: str | None = None,
) -> tuple[IceExchange, IceParcel]:
    """A recipient office asks a donor office for help; commits, returns the new exchange."""
    uploads = uploads or []
    recipient = session.get(Office, user.office_code)
    donor = session.get(Office, (donor_office or "").strip().upper())
    if recipient is None:
        raise NotFound(f"unknown office {user.office_code}")
    if donor is None:
        raise IceError(f"unknown donor office {donor_office!r}", code="unknown_office",
                       status=422)
    if _role(recipient) not in RECIPIENT_ROLES:
        raise IceError(f"{recipient.code} does not take part in ICE as a recipient office "
                       "(an administrator sets the ICE role)", code="not_recipient", status=403)
    if donor.code == recipient.code:
        raise IceError("an office cannot ask itself for help", code="same_office", status=422)
    if _role(donor) not in DONOR_ROLES:
        raise IceError(f"{donor.code} does not take part in ICE as a donor office",
                       code="not_donor", status=422)
    if kind not in KINDS:
        raise IceError(f"unknown kind of work {kind!r}: use {', '.join(KINDS)}",
                       code="bad_kind", status=422)
    try:
        number = parse_application_number(application or "")
    except NumberError as exc:
        raise IceError(str(exc), code="bad_application", status=422) from None
    due = parse_due_date(due_date)
    if not keys.is_local(session, recipient.code):
        raise IceError(f"{recipient.code} has no keys on this instance: an administrator runs "
                       f"'caseforum keys generate --office {recipient.code}'", code="no_keys",
                       status=409)
    route_name = choose_route(session, rt, sender=recipient.code, recipient=donor.code,
                              wanted=route or None)
    _refuse_hidden_characters(rt, uploads, office=recipient.code, user=user)

    exchange = IceExchange(
        id=str(uuid.uuid4()), recipient_office=recipient.code, donor_office=donor.code,
        application_office=number.office, application_number=number.number,
        application_display=number.display[:60], kind=kind, due_date=due, route=route_name,
        status="requested", requested_by=user.label[:120], recipient_sent_seq=1,
    )
    request = {
        "recipient_office": recipient.code,
        "donor_office": donor.code,
        "application": {"office": number.office, "number": number.number, "kind": number.kind,
                        "display": number.display[:60]},
        "kind": kind,
        "due_date": due.isoformat() if due else None,
    }
    parcel_id = str(uuid.uuid4())
    try:
        note_entry, files = _encrypt(rt, session, parcel_id=parcel_id, sender=recipient.code,
                                     recipient=donor.code, note=message, uploads=uploads)
        session.add(exchange)
        session.flush()
        append_audit(session, chain=recipient.code, action="exchange.requested",
                     actor=actor_label(user), exchange_id=exchange.id,
                     detail=f"{KINDS[kind]} for {number} asked of {donor.code}"
                            + (f", due {due.isoformat()}" if due else ""))
        parcel = _record_parcel(session, rt, exchange=exchange, parcel_id=parcel_id,
                                kind="request", sender=recipient.code, sequence=1, user=user,
                                note_entry=note_entry, files=files, request=request)
        _status_event(session, exchange, actor_id=user.id, office=recipient.code)
        session.commit()
    except BaseException:
        session.rollback()
        _cleanup(rt, parcel_id)
        raise
    return exchange, parcel


def take_step(
    session: Session,
    *,
    rt: IceRuntime,
    user: User,
    exchange_id: str,
    kind: str,
    message: str = "",
    uploads: list[parcels.Upload] | None = None,
) -> IceParcel:
    """Send one workflow step (accept, report, close ...) as a parcel; commits."""
    uploads = uploads or []
    exchange = session.get(IceExchange, exchange_id)
    if exchange is None:
        raise NotFound("no such exchange")
    side = exchange.side_of(user.office_code)
    step = check_step(exchange.status, kind, side)  # early answer, before any encryption
    if step.needs_files and not uploads:
        raise IceError(f"{step.label}: attach at least one document", code="files_required",
                       status=422)
    if step.needs_note and not message.strip():
        raise IceError(f"{step.label}: give a reason in the message", code="note_required",
                       status=422)
    sender = user.office_code
    recipient = exchange.other_party(sender)
    _refuse_hidden_characters(rt, uploads, office=sender, user=user, exchange_id=exchange.id)
    parcel_id = str(uuid.uuid4())
    try:
        note_entry, files = _encrypt(rt, session, parcel_id=parcel_id, sender=sender,
                                     recipient=recipient, note=message, uploads=uploads)
        assert side is not None
        column = _seq_column(side)
        # The increment is the transaction's first write: it locks the exchange, so
        # the state check below and the sequence number cannot race another step.
        session.exec(  # type: ignore[call-overload]
            update(IceExchange).where(IceExchange.id == exchange.id)  # type: ignore[arg-type]
            .values({column: getattr(IceExchange, column) + 1})
        )
        session.refresh(exchange)
        check_step(exchange.status, kind, side)
        previous = exchange.status
        if step.target is not None:
            exchange.status = step.target
        exchange.updated_at = utcnow()
        session.add(exchange)
        parcel = _record_parcel(session, rt, exchange=exchange, parcel_id=parcel_id, kind=kind,
                                sender=sender, sequence=getattr(exchange, column), user=user,
                                note_entry=note_entry, files=files, request=None)
        if exchange.status != previous:
            append_audit(session, chain=sender, action=f"exchange.{exchange.status}",
                         actor=actor_label(user), exchange_id=exchange.id,
                         detail=f"{previous} -> {exchange.status}")
            _status_event(session, exchange, actor_id=user.id, office=sender)
        session.commit()
    except BaseException:
        session.rollback()
        _cleanup(rt, parcel_id)
        raise
    return parcel


def assign(session: Session, *, user: User, viewer: Viewer, exchange_id: str,
           assignee: str) -> IceExchange:
    """Give the exchange to an examiner of the user's office (local: not sent to the peer).

    Who may assign anyone of their office is the ``ice.exchange.assign`` rule
    (office administrators); others may only take it on themselves. An empty
    ``assignee`` clears the assignment.
    """
    exchange = session.get(IceExchange, exchange_id)
    if exchange is None:
        raise NotFound("no such exchange")
    side = exchange.side_of(user.office_code)
    if side is None:
        raise NotFound("no such exchange")
    target: User | None = None
    if assignee.strip():
        target = session.exec(select(User).where(User.username == assignee.strip().lower())
                              ).first()
        if target is None or target.office_code != user.office_code or not target.is_active:
            raise IceError(f"{assignee!r} is not an active user of {user.office_code}",
                           code="bad_assignee", status=422)
    if not can(viewer, "ice.exchange.assign", exchange) and (
            target is None or target.id != user.id):
        raise IceError("only an office administrator can assign someone else or clear the "
                       "assignment",
                       code="forbidden", status=403)
    setattr(exchange, f"{side}_assignee_id", target.id if target else None)
    exchange.updated_at = utcnow()
    session.add(exchange)
    append_audit(session, chain=user.office_code, action="exchange.assigned",
                 actor=actor_label(user), exchange_id=exchange.id,
                 detail=f"{side} side assigned to {target.username if target else 'nobody'}")
    emit(session, kind="ice.exchange.assigned", actor_id=user.id, office_code=user.office_code,
         subject_type="ice_exchange", subject_id=exchange.id,
         payload={"exchange_id": exchange.id, "side": side,
                  "assignee_id": target.id if target else None})
    session.commit()
    return exchange


def require_open(exchange: IceExchange) -> None:
    if exchange.status == "closed":
        raise Conflict("the exchange is closed")
