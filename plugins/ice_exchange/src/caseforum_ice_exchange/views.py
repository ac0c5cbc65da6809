"""What the API and the pages show of exchanges and parcels, per viewer.

One place decides how much a viewer sees: the two offices' users get the content
(application, messages, file names, audit trail); a platform administrator gets
existence and state only. Both the JSON API and the HTML pages are built from
these dictionaries, so they cannot drift apart.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_
from sqlmodel import Session, select

from caseforum.authz import Viewer, can
from caseforum.models import Office, User

from . import crypto, keys, parcels
from .config import IceRuntime
from .errors import IceError, NotFound
from .models import IceExchange, IceParcel, IcePeer
from .states import KINDS, STATUS_LABELS, STEPS, allowed_steps, stepper, waiting_on

log = logging.getLogger(__name__)
API = "/api/v1/ice"


def dossier_url(exchange: IceExchange) -> str:
    return f"/dossiers/{quote(exchange.application_office)}/{quote(exchange.application_number)}"


def get_exchange(session: Session, viewer: Viewer, exchange_id: str, *,
                 content: bool = True) -> IceExchange:
    """The exchange if the viewer may see it (its content, or only its state); else 404.

    Not-allowed and not-there look the same, so ids cannot be probed.
    """
    exchange = session.get(IceExchange, exchange_id) if len(exchange_id) <= 36 else None
    action = "ice.exchange.view" if content else "ice.exchange.view_state"
    if exchange is None or not can(viewer, action, exchange):
        raise NotFound("no such exchange (or you may not see it)")
    return exchange


def visible_exchanges(session: Session, viewer: Viewer, *, show: str = "all",
                      limit: int = 200) -> list[IceExchange]:
    query = select(IceExchange)
    if not can(viewer, "ice.exchanges.list_all"):  # else: state only of every exchange
        query = query.where(or_(IceExchange.recipient_office == viewer.office_code,
                                IceExchange.donor_office == viewer.office_code))
    if show == "open":
        query = query.where(IceExchange.status.not_in(("closed", "declined")))  # type: ignore[attr-defined]
    elif show == "closed":
        query = query.where(IceExchange.status.in_(("closed", "declined")))  # type: ignore[attr-defined]
    rows = list(session.exec(query.order_by(IceExchange.updated_at.desc()).limit(limit)))  # type: ignore[attr-defined]
    if show == "waiting":
        rows = [e for e in rows if is_waiting_for(e, viewer.office_code)]
    return rows


def is_waiting_for(exchange: IceExchange, office_code: str | None) -> bool:
    side = waiting_on(exchange)
    return side is not None and getattr(exchange, f"{side}_office") == office_code


def summary(exchange: IceExchange, viewer: Viewer) -> dict[str, Any]:
    """One exchange in a list; content fields only for the two offices."""
    base: dict[str, Any] = {
        "id": exchange.id,
        "status": exchange.status,
        "status_label": STATUS_LABELS.get(exchange.status, exchange.status),
        "recipient_office": exchange.recipient_office,
        "donor_office": exchange.donor_office,
        "route": exchange.route,
        "created_at": exchange.created_at,
        "updated_at": exchange.updated_at,
        "content_visible": can(viewer, "ice.exchange.view", exchange),
    }
    if not base["content_visible"]:
        return base
    side = waiting_on(exchange)
    base.update({
        "kind": exchange.kind,
        "kind_label": KINDS.get(exchange.kind, exchange.kind),
        "application": {
            "office": exchange.application_office,
            "number": exchange.application_number,
            "display": exchange.application_display,
            "url": dossier_url(exchange),
        },
        "due_date": exchange.due_date,
        "overdue": exchange.overdue,
        "requested_by": exchange.requested_by,
        "waiting_on": getattr(exchange, f"{side}_office") if side else None,
        "my_side": exchange.side_of(viewer.office_code),
    })
    return base


def _verification(parcel: IceParcel, viewer_office: str | None) -> dict[str, str]:
    """Three checks for the page's ✓ marks: ok, pending or failed.

    The receiving instance verified signature and hashes itself; the sending
    instance knows it from the recipient's signed receipt (verdict "accepted").
    """
    if parcel.status == "refused":
        return {"signature": "failed", "hashes": "failed", "receipt": "failed"}
    verified = parcel.verified_at is not None or parcel.status == "delivered"
    return {
        "signature": "ok" if verified else "pending",
        "hashes": "ok" if verified else "pending",
        "receipt": "ok" if parcel.receipt and (parcel.status == "delivered"
                                               or viewer_office == parcel.recipient_office)
        else "pending",
    }


def _own_keys(session: Session, rt: IceRuntime, office_code: str | None
              ) -> crypto.OfficeKeys | None:
    if not office_code or not keys.is_local(session, office_code):
        return None
    try:
        return keys.private_keys(session, office_code=office_code, secret=rt.secret)
    except IceError:
        log.exception("cannot unwrap the keys of %s", office_code)
        return None


def readable_by(parcel: IceParcel, office_code: str | None) -> bool:
    """Receiving offices read a parcel only once it was verified; senders always."""
    if office_code == parcel.sender_office:
        return True
    return office_code == parcel.recipient_office and parcel.verified_at is not None


def parcel_view(session: Session, rt: IceRuntime, parcel: IceParcel, viewer: Viewer, *,
                content: bool, own_keys: crypto.OfficeKeys | None = None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": parcel.id,
        "kind": parcel.kind,
        "kind_label": STEPS[parcel.kind].label if parcel.kind in STEPS else parcel.kind,
        "sequence": parcel.sequence,
        "sender_office": parcel.sender_office,
        "recipient_office": parcel.recipient_office,
        "direction": ("outgoing" if viewer.office_code == parcel.sender_office else
                      "incoming" if viewer.office_code == parcel.recipient_office else None),
        "route": parcel.route,
        "status": parcel.status,
        "created_at": parcel.created_at,
        "delivered_at": parcel.delivered_at,
        "attempts": parcel.attempts,
        "next_attempt_at": parcel.next_attempt_at if parcel.status == "queued" else None,
        "last_error": parcel.last_error or None,
        "verification": _verification(parcel, viewer.office_code),
    }
    if not content:
        return base
    readable = readable_by(parcel, viewer.office_code)
    base.update({
        "sent_by": parcel.manifest.get("sent_by", ""),
        "manifest_sha256": parcel.manifest_sha256,
        "readable": readable,
        "files": [
            {"name": f["name"], "size": f["size"], "media_type": f["media_type"],
             "sha256": f["sha256"],
             "url": f"{API}/parcels/{parcel.id}/files/{quote(f['name'], safe='')}"}
            for f in parcel.files
        ],
        "receipt": ({**parcel.receipt, "signature": parcel.receipt_signature}
                    if parcel.receipt else None),
        "message": None,
    })
    note = parcel.manifest.get("note")
    if note and readable and own_keys is not None:
        try:
            base["message"] = parcels.read_note(
                rt.part_opener(parcel.id, parcels.NOTE_PART), note,
                keys=own_keys, as_sender=viewer.office_code == parcel.sender_office)
        except (OSError, crypto.IceCryptoError) as exc:
            log.error("cannot read the message of parcel %s: %s", parcel.id, exc)
            base["message_error"] = "the message cannot be decrypted on this instance"
    elif note:
        base["message_error"] = ("encrypted: not yet verified" if not readable else
                                 f"encrypted for {viewer.office_code}'s keys, which this "
                                 "instance does not hold")
    return base


def exchange_parcels(session: Session, exchange: IceExchange) -> list[IceParcel]:
    query = (select(IceParcel).where(IceParcel.exchange_id == exchange.id)
             .order_by(IceParcel.created_at, IceParcel.sequence))  # type: ignore[arg-type]
    return list(session.exec(query))


def detail(session: Session, rt: IceRuntime, exchange: IceExchange, viewer: Viewer
           ) -> dict[str, Any]:
    """The exchange with its parcels, as the viewer may see it."""
    data = summary(exchange, viewer)
    content = data["content_visible"]
    own = _own_keys(session, rt, viewer.office_code) if content else None
    rows = exchange_parcels(session, exchange)
    data["parcels"] = [parcel_view(session, rt, p, viewer, content=content, own_keys=own)
                       for p in rows]
    data["kinds_sent"] = sorted({p.kind for p in rows if p.status != "refused"})
    return data


def offices_panel(session: Session, exchange: IceExchange) -> list[dict[str, Any]]:
    """The two offices with where they are served and their key fingerprints."""
    result = []
    for side, code in (("recipient", exchange.recipient_office),
                       ("donor", exchange.donor_office)):
        office = session.get(Office, code)
        peer = session.get(IcePeer, code)
        result.append({
            "side": side,
            "code": code,
            "name": office.name if office else code,
            "where": ("hosted on this instance" if keys.is_local(session, code) else
                      f"peer instance {peer.url}" if peer else "no keys known here"),
            "fingerprints": keys.fingerprints(session, code),
        })
    return result


def assignees(session: Session, exchange: IceExchange) -> dict[str, User | None]:
    return {
        side: session.get(User, getattr(exchange, f"{side}_assignee_id"))
        if getattr(exchange, f"{side}_assignee_id") else None
        for side in ("recipient", "donor")
    }


AUDIT_LABELS = {
    "exchange.requested": "Request opened",
    "exchange.assigned": "Assignment changed",
    "parcel.sent": "Parcel signed and queued",
    "parcel.received": "Parcel received and verified",
    "parcel.refused": "Incoming parcel refused",
    "parcel.refused_by_peer": "Parcel refused by the other office",
    "receipt.signed": "Receipt signed",
    "receipt.verified": "Receipt verified: delivered",
    "delivery.deferred": "Delivery failed; will retry",
    "file.opened": "File opened",
    "keys.generated": "Office keys generated",
}


def audit_label(action: str) -> str:
    """``parcel.sent.report`` -> "Parcel signed and queued: send report"."""
    if action in AUDIT_LABELS:
        return AUDIT_LABELS[action]
    head, _, tail = action.rpartition(".")
    if head == "exchange" and tail in STATUS_LABELS:
        return f"Exchange {STATUS_LABELS[tail].lower()}"
    if head in AUDIT_LABELS and tail in STEPS:
        return f"{AUDIT_LABELS[head]}: {STEPS[tail].label.lower()}"
    return action


def actions_for(exchange: IceExchange, viewer: Viewer) -> list[Any]:
    if not can(viewer, "ice.exchange.act", exchange):
        return []
    return allowed_steps(exchange.status, exchange.side_of(viewer.office_code))


__all__ = ["actions_for", "assignees", "detail", "dossier_url", "exchange_parcels",
           "audit_label", "get_exchange", "offices_panel", "parcel_view", "stepper", "summary",
           "visible_exchanges"]
