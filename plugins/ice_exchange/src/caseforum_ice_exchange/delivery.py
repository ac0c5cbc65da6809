"""The outbox: deliver queued parcels through their route, retrying with backoff.

A parcel is queued in the transaction that records it. Delivery claims it with a
lease (so two workers, or the request thread and the loop, never send it at the
same moment), calls the route with no transaction open, and records the verified
receipt, the peer's refusal, or the next attempt time. Parcels of one exchange
from one office go in sequence order; the peer refuses an old sequence anyway.
The receiving inbox is idempotent by parcel id: a repeated delivery is answered
with the original receipt, so an attempt whose answer was lost is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy import func, or_, update
from sqlmodel import select

from caseforum.events import emit
from caseforum.models import utcnow

from . import crypto, keys, parcels
from .audit import append_audit
from .config import IceRuntime
from .errors import DeliveryError, IceError, Refused
from .inbox import Envelope, SignedReceipt
from .models import IceParcel

log = logging.getLogger(__name__)
SYNC_GRACE = timedelta(seconds=30)
"""The request thread delivers synchronous (hosted) parcels; the loop steps in after this."""


def envelope_for(rt: IceRuntime, parcel: IceParcel) -> Envelope:
    parts: dict[str, Any] = {}
    if parcel.manifest.get("note"):
        parts[parcels.NOTE_PART] = rt.part_opener(parcel.id, parcels.NOTE_PART)
    for index, _ in enumerate(parcel.files):
        parts[str(index)] = rt.part_opener(parcel.id, str(index))
    return Envelope(manifest=parcel.manifest, signature=parcel.signature, parts=parts)


def backoff(rt: IceRuntime, attempts: int) -> float:
    """Seconds before the next attempt: doubling from the initial wait, capped, jittered."""
    base = rt.config.retry_initial_seconds * (2 ** max(0, min(attempts - 1, 30)))
    return min(base, rt.config.retry_max_seconds) * random.uniform(0.8, 1.2)


def _claim(rt: IceRuntime, parcel_id: str) -> IceParcel | None:
    now = utcnow()
    lease = timedelta(seconds=rt.config.delivery_timeout_seconds + 60)
    with rt.session() as session:
        parcel = session.get(IceParcel, parcel_id)
        if parcel is None or parcel.status != "queued":
            return None
        earlier = session.exec(select(IceParcel.id).where(
            IceParcel.exchange_id == parcel.exchange_id,
            IceParcel.sender_office == parcel.sender_office,
            IceParcel.status == "queued",
            IceParcel.sequence < parcel.sequence,
        )).first()
        if earlier is not None:
            return None
        claimed = session.exec(  # type: ignore[call-overload]
            update(IceParcel)
            .where(IceParcel.id == parcel_id, IceParcel.status == "queued",  # type: ignore[arg-type]
                   or_(IceParcel.next_attempt_at.is_(None),  # type: ignore[union-attr]
                       IceParcel.next_attempt_at <= now))  # type: ignore[operator]
            .values(next_attempt_at=now + lease, attempts=IceParcel.attempts + 1)
        )
        if claimed.rowcount != 1:
            session.rollback()
            return None
        session.commit()
        session.refresh(parcel)
        return parcel


def deliver(rt: IceRuntime, parcel_id: str) -> str:
    """Try to deliver one parcel now; returns delivered, refused, retry or skipped."""
    parcel = _claim(rt, parcel_id)
    if parcel is None:
        return "skipped"
    route = rt.routes.get(parcel.route)
    if route is None:
        _retry(rt, parcel, f"transfer route {parcel.route!r} is not available "
                           "(is the plugin that provides it enabled?)")
        return "retry"
    try:
        signed = route.send(envelope_for(rt, parcel), rt)
    except Refused as exc:
        _refused(rt, parcel, exc)
        return "refused"
    except (DeliveryError, IceError) as exc:
        _retry(rt, parcel, str(exc))
        return "retry"
    except Exception as exc:  # a route bug must not stop the queue
        log.exception("delivering parcel %s failed", parcel.id)
        _retry(rt, parcel, f"unexpected error: {type(exc).__name__}: {exc}")
        return "retry"
    try:
        _check_receipt(rt, parcel, signed)
    except (ValueError, crypto.SignatureError) as exc:
        _retry(rt, parcel, f"the receipt from {parcel.recipient_office} was not accepted: {exc}",
               audit=True)
        return "retry"
    _delivered(rt, parcel, signed)
    return "delivered"


def _check_receipt(rt: IceRuntime, parcel: IceParcel, signed: SignedReceipt) -> None:
    with rt.session() as session:
        recipient = keys.public_keys(session, parcel.recipient_office)
    if recipient is None:
        raise ValueError(f"no public keys for {parcel.recipient_office}")
    crypto.verify_receipt(signed.receipt, signed.signature, recipient.verify_key)
    receipt = signed.receipt
    if (receipt.get("parcel_id") != parcel.id
            or receipt.get("manifest_sha256") != parcel.manifest_sha256
            or receipt.get("receiver_office") != parcel.recipient_office):
        raise ValueError("it is for another parcel, manifest or office")
    if receipt.get("verdict") != "accepted":
        raise ValueError(f"its verdict is {receipt.get('verdict')!r}")


def _delivered(rt: IceRuntime, parcel: IceParcel, signed: SignedReceipt) -> None:
    with rt.session() as session:
        row = session.get(IceParcel, parcel.id)
        assert row is not None
        row.status = "delivered"
        row.receipt = signed.receipt
        row.receipt_signature = signed.signature
        row.delivered_at = utcnow()
        row.next_attempt_at = None
        row.last_error = ""
        session.add(row)
        tries = f" after {row.attempts} attempts" if row.attempts > 1 else ""
        append_audit(session, chain=row.sender_office, action="receipt.verified",
                     actor=f"office:{row.recipient_office}", exchange_id=row.exchange_id,
                     parcel_id=row.id,
                     detail=f"{row.kind} delivered to {row.recipient_office} via {row.route}"
                            f"{tries}; receipt signed {signed.receipt.get('received_at')} "
                            "verified")
        emit(session, kind="ice.parcel.delivered", office_code=row.sender_office,
             subject_type="ice_parcel", subject_id=row.id,
             payload={"exchange_id": row.exchange_id, "kind": row.kind,
                      "recipient_office": row.recipient_office})
        session.commit()


def _retry(rt: IceRuntime, parcel: IceParcel, reason: str, *, audit: bool = False) -> None:
    wait = backoff(rt, parcel.attempts)
    with rt.session() as session:
        row = session.get(IceParcel, parcel.id)
        if row is None or row.status != "queued":
            return
        row.last_error = reason[:1000]
        row.next_attempt_at = utcnow() + timedelta(seconds=wait)
        session.add(row)
        if audit or row.attempts == 1:
            append_audit(session, chain=row.sender_office, action="delivery.deferred",
                         actor="system", exchange_id=row.exchange_id, parcel_id=row.id,
                         detail=f"attempt {row.attempts} failed: {reason[:500]}; "
                                "retrying with backoff")
        session.commit()
    log.warning("parcel %s not delivered (attempt %d): %s; next try in %.0f s",
                parcel.id, parcel.attempts, reason, wait)


def _refused(rt: IceRuntime, parcel: IceParcel, error: Refused) -> None:
    with rt.session() as session:
        row = session.get(IceParcel, parcel.id)
        if row is None:
            return
        row.status = "refused"
        row.last_error = f"{error.code}: {error.message}"[:1000]
        row.next_attempt_at = None
        session.add(row)
        append_audit(session, chain=row.sender_office, action="parcel.refused_by_peer",
                     actor=f"office:{row.recipient_office}", exchange_id=row.exchange_id,
                     parcel_id=row.id, detail=row.last_error)
        emit(session, kind="ice.parcel.refused", office_code=row.sender_office,
             subject_type="ice_parcel", subject_id=row.id,
             payload={"exchange_id": row.exchange_id, "code": error.code,
                      "recipient_office": row.recipient_office})
        session.commit()


def deliver_due(rt: IceRuntime, *, stop: threading.Event | None = None,
                limit: int = 100) -> float | None:
    """Deliver what is due; returns seconds until the next retry is due (None: nothing)."""
    now = utcnow()
    with rt.session() as session:
        rows = session.exec(
            select(IceParcel.id, IceParcel.route, IceParcel.attempts, IceParcel.created_at)
            .where(IceParcel.status == "queued",
                   or_(IceParcel.next_attempt_at.is_(None),  # type: ignore[union-attr]
                       IceParcel.next_attempt_at <= now))  # type: ignore[operator]
            .order_by(IceParcel.created_at, IceParcel.sequence)  # type: ignore[arg-type]
            .limit(limit)
        ).all()
    for parcel_id, route_name, attempts, created_at in rows:
        if stop is not None and stop.is_set():
            return None
        route = rt.routes.get(route_name)
        if route is not None and getattr(route, "synchronous", False) and attempts == 0 \
                and now - created_at < SYNC_GRACE:
            continue  # the request that queued it is delivering it
        deliver(rt, parcel_id)
    with rt.session() as session:
        upcoming = session.exec(
            select(func.min(IceParcel.next_attempt_at)).where(IceParcel.status == "queued")
        ).one()
    if upcoming is None:
        return None
    return max(0.0, (upcoming - utcnow()).total_seconds())


class DeliveryLoop:
    """Background task of the web app: woken by the event broker, polling as a fallback."""

    def __init__(self, rt: IceRuntime) -> None:
        self.rt = rt
        self.stop_flag = threading.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="ice-delivery")

    def stop(self) -> None:
        self.stop_flag.set()
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        broker = self.rt.broker
        flag = broker.subscribe() if broker is not None else asyncio.Event()
        try:
            while not self.stop_flag.is_set():
                flag.clear()
                # every post wakes this loop on every host: the live watchers first, as
                # the event consumers and the delivery workers let them (bounded wait)
                after_hub = getattr(broker, "after_hub", None)
                if after_hub is not None:
                    await after_hub()
                try:
                    wait = await anyio.to_thread.run_sync(
                        functools.partial(deliver_due, self.rt, stop=self.stop_flag),
                        abandon_on_cancel=True)
                except Exception:
                    log.exception("ICE delivery pass failed; trying again later")
                    wait = None
                poll = self.rt.config.poll_seconds
                timeout = max(0.05, poll if wait is None else min(wait, poll))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), timeout=timeout)
        finally:
            if broker is not None:
                broker.unsubscribe(flag)
