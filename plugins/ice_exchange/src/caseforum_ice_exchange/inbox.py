"""Receiving side: verify a parcel completely, then store it and sign a receipt.

The order matters. The manifest's shape, its addressing, the sender's key, the
signature, the size, the exchange and the sequence are checked first; then every
file is decrypted and hashed (outside any transaction); only then are the files
moved into the store and the rows written, in one transaction that re-checks
what another request could have changed meanwhile. A refusal at any point is
audited, answered with a clear 4xx, and leaves nothing stored as received.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from caseforum.events import emit
from caseforum.models import Office, utcnow

from . import crypto, keys, parcels
from .audit import append_audit
from .config import IceRuntime
from .errors import Conflict, IceError, Refused
from .models import INSTANCE_CHAIN, IceExchange, IceParcel
from .parcels import Manifest, Opener
from .states import KINDS, check_step

log = logging.getLogger(__name__)
_CODE = re.compile(r"^[A-Z]{2}$")
_UUID = re.compile(parcels.UUID_PATTERN)


@dataclass
class Envelope:
    """A parcel as it travels: the signed manifest, its signature, and the ciphertext parts."""

    manifest: dict[str, Any]
    signature: str
    parts: dict[str, Opener] = field(default_factory=dict)


@dataclass(frozen=True)
class SignedReceipt:
    receipt: dict[str, Any]
    signature: str

    def as_json(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "signature": self.signature}


def _claimed(raw: Any, name: str) -> str | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def record_refusal(rt: IceRuntime, *, error: Refused, via: str, manifest: Any = None,
                   claimed_sender: str | None = None, claimed_recipient: str | None = None,
                   claimed_parcel: str | None = None) -> None:
    """Audit a refusal in the chain of the office it was addressed to (if hosted here).

    What the parcel claims is recorded as claimed: a refused parcel proves nothing.
    """
    sender = _claimed(manifest, "sender") or claimed_sender or "?"
    recipient = _claimed(manifest, "recipient") or claimed_recipient or "?"
    parcel_id = _claimed(manifest, "parcel_id") or claimed_parcel
    exchange_id = _claimed(manifest, "exchange_id")
    parcel_id = parcel_id if parcel_id and _UUID.match(parcel_id) else None
    exchange_id = exchange_id if exchange_id and _UUID.match(exchange_id) else None
    sender = sender if _CODE.match(sender) else "?"
    recipient = recipient if _CODE.match(recipient) else "?"
    with rt.session() as session:
        chain = recipient if recipient != "?" and keys.is_local(session, recipient) \
            else INSTANCE_CHAIN
        if exchange_id and session.get(IceExchange, exchange_id) is None:
            exchange_id = None
        append_audit(session, chain=chain, action="parcel.refused", actor=f"peer:{sender}",
                     exchange_id=exchange_id, parcel_id=parcel_id,
                     detail=f"{error.code}: {error.message} (claimed sender {sender}, "
                            f"recipient {recipient}, via {via})")
        emit(session, kind="ice.parcel.refused", office_code=None if chain == INSTANCE_CHAIN
             else chain, subject_type="ice_parcel", subject_id=parcel_id or "",
             payload={"code": error.code, "via": via, "claimed_sender": sender,
                      "exchange_id": exchange_id})
        session.commit()


def receive(rt: IceRuntime, envelope: Envelope, *, via: str) -> SignedReceipt:
    """Accept a parcel for an office hosted here, or raise ``Refused`` (audited)."""
    try:
        return _receive(rt, envelope, via=via)
    except Refused as exc:
        record_refusal(rt, error=exc, via=via, manifest=envelope.manifest)
        raise


def _sender_keys(session: Session, manifest: Manifest, *, via: str) -> crypto.PublicOfficeKeys:
    local = keys.local_offices(session)
    if manifest.recipient not in local:
        raise Refused(f"the parcel is addressed to {manifest.recipient}, which is not an office "
                      "hosted on this instance", code="misaddressed")
    if via == "hosted":
        found = keys.public_keys(session, manifest.sender) if manifest.sender in local else None
        if found is None:
            raise Refused(f"{manifest.sender} is not hosted on this instance",
                          code="unknown_peer", status=403)
        return found
    if manifest.sender in local:
        raise Refused(f"{manifest.sender} is hosted on this instance; its parcels do not come "
                      "through the inbox", code="unknown_peer", status=403)
    found = keys.peer_public_keys(session, manifest.sender)
    if found is None:
        raise Refused(f"{manifest.sender} is not a peer of this instance: its administrator "
                      "must first exchange keys ('caseforum peers add')", code="unknown_peer",
                      status=403)
    return found


def _side_seq(exchange: IceExchange, side: str) -> int:
    return int(getattr(exchange, f"{side}_received_seq"))


def _check_exchange(session: Session, manifest: Manifest, *, via: str) -> IceExchange | None:
    """Does the parcel fit the exchange as we know it? Returns the exchange (None: new)."""
    exchange = session.get(IceExchange, manifest.exchange_id)
    if manifest.kind == "request":
        request = manifest.request
        assert request is not None
        if request.recipient_office != manifest.sender or request.donor_office != \
                manifest.recipient:
            raise Refused("the request's offices do not match the parcel's sender and "
                          "recipient", code="misaddressed")
        if request.kind not in KINDS:
            raise Refused(f"unknown kind of work {request.kind!r}", code="malformed",
                          status=400)
        if request.due_date:
            try:
                date.fromisoformat(request.due_date)
            except ValueError:
                raise Refused("the due date is not a valid date", code="malformed",
                              status=400) from None
        if manifest.sequence != 1:
            raise Refused("a request must be the sender's first parcel (sequence 1)",
                          code="replay", status=409)
        if exchange is not None and via != "hosted":
            raise Refused(f"exchange {manifest.exchange_id} already exists here: the request "
                          "was received before", code="replay", status=409)
        if via != "hosted":
            office = session.get(Office, manifest.recipient)
            role = str(getattr(office.ice_role, "value", office.ice_role)) if office else "none"
            if role not in ("donor", "both"):
                raise Refused(f"{manifest.recipient} does not take requests as an ICE donor "
                              "office", code="not_accepted")
        if exchange is None:
            return None
    if exchange is None:
        raise Refused(f"exchange {manifest.exchange_id} is not known here",
                      code="unknown_exchange", status=409)
    if {manifest.sender, manifest.recipient} != set(exchange.parties):
        raise Refused(f"exchange {exchange.id} is between {exchange.recipient_office} and "
                      f"{exchange.donor_office}, not {manifest.sender} and {manifest.recipient}",
                      code="misaddressed")
    side = exchange.side_of(manifest.sender)
    assert side is not None
    received = _side_seq(exchange, side)
    if manifest.sequence <= received:
        raise Refused(f"sequence {manifest.sequence} from {manifest.sender} was already used "
                      f"(last received: {received}): replayed or re-ordered parcel",
                      code="replay", status=409)
    if via != "hosted":
        try:
            check_step(exchange.status, manifest.kind, side)
        except Conflict as exc:
            raise Refused(exc.message, code="invalid_transition", status=409) from None
    return exchange


def _check_replay(session: Session, manifest: Manifest, digest: str, *,
                  via: str) -> IceParcel | None:
    """A parcel id seen before is a replay; the honest sender's retry gets its receipt back."""
    existing = session.get(IceParcel, manifest.parcel_id)
    if existing is None:
        if via == "hosted":
            raise Refused("hosted delivery of a parcel that was never sent", code="malformed",
                          status=400)
        return None
    if via == "hosted" and existing.verified_at is None and existing.manifest_sha256 == digest:
        return existing
    extra: dict[str, Any] = {}
    if existing.manifest_sha256 == digest and existing.receipt and existing.receipt_signature:
        extra = {"receipt": existing.receipt, "signature": existing.receipt_signature}
    raise Refused(f"parcel {manifest.parcel_id} was already received: replay refused",
                  code="replay", status=409, extra=extra)


def _receive(rt: IceRuntime, envelope: Envelope, *, via: str) -> SignedReceipt:
    manifest = parcels.parse_manifest(envelope.manifest)
    digest = crypto.manifest_digest(envelope.manifest)
    with rt.session() as session:
        sender_keys = _sender_keys(session, manifest, via=via)
        try:
            crypto.verify_manifest(envelope.manifest, envelope.signature, sender_keys.verify_key)
        except crypto.SignatureError as exc:
            raise Refused(f"{exc} (checked with {manifest.sender}'s signing key "
                          f"{sender_keys.signing_fingerprint})", code="bad_signature",
                          status=403) from None
        if manifest.ciphertext_bytes > rt.max_parcel_bytes:
            raise Refused(f"the parcel is {manifest.ciphertext_bytes} bytes; this instance "
                          f"accepts at most {rt.config.max_parcel_mb} MB", code="oversize",
                          status=413)
        _check_replay(session, manifest, digest, via=via)
        _check_exchange(session, manifest, via=via)
        own = keys.private_keys(session, office_code=manifest.recipient, secret=rt.secret)
    parcels.verify_parts(manifest, envelope.parts, own)  # slow part: no transaction open

    folder = rt.parcel_dir(manifest.parcel_id)
    moved = False
    try:
        if via != "hosted":
            parcels.store_parts(envelope.parts, folder)
            moved = True
            rt.offload(manifest.parcel_id)
        with rt.session() as session:
            try:
                signed = _commit(session, rt, manifest, envelope, digest, own, via=via,
                                 sender_fingerprint=sender_keys.signing_fingerprint)
                session.commit()
            except IntegrityError:
                session.rollback()
                raise IceError("another delivery of this parcel is being stored right now; "
                               "try again", code="busy", status=503) from None
        return signed
    except BaseException:
        if moved and not _parcel_recorded(rt, manifest.parcel_id):
            # (a copy another delivery of the same parcel stored and recorded stays)
            rt.forget(manifest.parcel_id)
        raise


def _parcel_recorded(rt: IceRuntime, parcel_id: str) -> bool:
    try:
        with rt.session() as session:
            return session.get(IceParcel, parcel_id) is not None
    except Exception:  # no answer: remove this delivery's copy, as when it is not recorded
        return False


def _commit(session: Session, rt: IceRuntime, manifest: Manifest, envelope: Envelope,
            digest: str, own: crypto.OfficeKeys, *, via: str,
            sender_fingerprint: str) -> SignedReceipt:
    """Write the received parcel, move the exchange on, sign the receipt: one transaction."""
    side = "recipient" if manifest.kind == "request" else None
    exchange = session.get(IceExchange, manifest.exchange_id)
    if exchange is not None:
        side = exchange.side_of(manifest.sender)
        column = f"{side}_received_seq"
        session.exec(  # type: ignore[call-overload]  (lock the exchange first)
            update(IceExchange).where(IceExchange.id == exchange.id)  # type: ignore[arg-type]
            .values({column: getattr(IceExchange, column)})
        )
        session.refresh(exchange)
    # Another request may have delivered the same parcel while we were verifying.
    existing = _check_replay(session, manifest, digest, via=via)
    exchange_checked = _check_exchange(session, manifest, via=via)
    now = utcnow()
    status_changed = False
    if exchange_checked is None:
        request = manifest.request
        assert request is not None
        exchange = IceExchange(
            id=manifest.exchange_id, recipient_office=manifest.sender,
            donor_office=manifest.recipient, application_office=request.application.office,
            application_number=request.application.number,
            application_display=request.application.display, kind=request.kind,
            due_date=date.fromisoformat(request.due_date) if request.due_date else None,
            route="webservice" if via != "hosted" else via, status="requested",
            created_at=manifest.created, requested_by=manifest.sent_by,
        )
        session.add(exchange)
        session.flush()
        status_changed = True
    assert exchange is not None
    side = exchange.side_of(manifest.sender)
    assert side is not None
    setattr(exchange, f"{side}_received_seq", manifest.sequence)
    if via != "hosted" and manifest.kind != "request":
        step = check_step(exchange.status, manifest.kind, side)
        if step.target is not None and step.target != exchange.status:
            exchange.status = step.target
            status_changed = True
    exchange.updated_at = now
    session.add(exchange)

    receipt = crypto.build_receipt(parcel_id=manifest.parcel_id, manifest_sha256=digest,
                                   received_at=now, receiver_office=manifest.recipient,
                                   verdict="accepted")
    signature = crypto.sign_receipt(receipt, own.signing_key)
    if existing is None:
        existing = IceParcel(
            id=manifest.parcel_id, exchange_id=exchange.id, kind=manifest.kind,
            sender_office=manifest.sender, recipient_office=manifest.recipient,
            sequence=manifest.sequence, route=exchange.route, manifest=envelope.manifest,
            manifest_sha256=digest, signature=envelope.signature, status="delivered",
            created_at=manifest.created, delivered_at=now,
        )
    existing.verified_at = now
    existing.receipt = receipt
    existing.receipt_signature = signature
    session.add(existing)

    names = ", ".join(entry.name for entry in manifest.files) or "no documents"
    actor = f"peer:{manifest.sender}" if via != "hosted" else f"office:{manifest.sender}"
    append_audit(session, chain=manifest.recipient, action=f"parcel.received.{manifest.kind}",
                 actor=actor, exchange_id=exchange.id, parcel_id=manifest.parcel_id,
                 detail=f"sequence {manifest.sequence} from {manifest.sender} via {via}; "
                        f"signature verified (signing key {sender_fingerprint}), "
                        f"{len(manifest.entries())} part(s) decrypted and hashes verified: "
                        f"{names}")
    append_audit(session, chain=manifest.recipient, action="receipt.signed", actor=actor,
                 exchange_id=exchange.id, parcel_id=manifest.parcel_id,
                 detail=f"receipt for manifest {digest[:16]}… signed by {manifest.recipient}")
    if status_changed and via != "hosted":
        append_audit(session, chain=manifest.recipient, action=f"exchange.{exchange.status}",
                     actor=actor, exchange_id=exchange.id,
                     detail=f"{manifest.kind} from {manifest.sender}")
    emit(session, kind="ice.parcel.received", office_code=manifest.recipient,
         subject_type="ice_parcel", subject_id=manifest.parcel_id,
         payload={"exchange_id": exchange.id, "kind": manifest.kind,
                  "sender_office": manifest.sender, "via": via})
    if status_changed and via != "hosted":
        emit(session, kind=f"ice.exchange.{exchange.status}", office_code=manifest.recipient,
             subject_type="ice_exchange", subject_id=exchange.id,
             payload={"exchange_id": exchange.id, "status": exchange.status,
                      "recipient_office": exchange.recipient_office,
                      "donor_office": exchange.donor_office, "kind": exchange.kind})
    return SignedReceipt(receipt, signature)

