"""Per-office hash-chained audit log, stored in the database.

Every step of an exchange is appended to the chain of each office hosted here that
it concerns, in the same transaction as the step itself. ``verify`` recomputes the
chains; the ``ice_audit_head`` row of each chain also records its newest entry so
that entries cut off the end (which leave a shorter but valid chain) are noticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from caseforum.models import utcnow

from . import anchors
from .anchors import AnchorTampered, AuditAnchors
from .audit_chain import FIRST_SEQ, GENESIS, entry_hash, verify_chain
from .models import IceAuditEntry, IceAuditHead

MAX_DETAIL = 2000


def append_audit(
    session: Session,
    *,
    chain: str,
    action: str,
    actor: str = "",
    exchange_id: str | None = None,
    parcel_id: str | None = None,
    detail: str = "",
) -> IceAuditEntry:
    """Append one entry to ``chain``; it commits with the caller's transaction.

    The head row is written before it is read: that takes the write lock (the row
    on PostgreSQL, the database on SQLite), so two appends never pick the same seq.
    """
    session.exec(  # type: ignore[call-overload]
        update(IceAuditHead).where(IceAuditHead.chain == chain)  # type: ignore[arg-type]
        .values(seq=IceAuditHead.seq)
    )
    head = session.get(IceAuditHead, chain, populate_existing=True)
    if head is None:
        head = IceAuditHead(chain=chain, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    entry = IceAuditEntry(
        chain=chain,
        seq=head.seq + 1,
        prev_hash=head.hash,
        hash="",
        at=utcnow(),
        action=action[:48],
        exchange_id=exchange_id,
        parcel_id=parcel_id,
        actor=actor[:120],
        detail=detail[:MAX_DETAIL],
    )
    entry.hash = entry_hash(entry.prev_hash, entry.seq, entry.chain_fields)
    head.seq, head.hash = entry.seq, entry.hash
    session.add(entry)
    session.add(head)
    anchors.remember(session, chain, entry.seq, entry.hash)
    return entry


class _Linked:
    """Adapts a row to ``audit_chain.ChainEntry``."""

    __slots__ = ("row",)

    def __init__(self, row: IceAuditEntry) -> None:
        self.row = row

    @property
    def seq(self) -> int:
        return self.row.seq

    @property
    def prev_hash(self) -> str:
        return self.row.prev_hash

    @property
    def hash(self) -> str:
        return self.row.hash

    @property
    def fields(self) -> dict[str, Any]:
        return self.row.chain_fields


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and not self.reason

    def describe(self) -> str:
        if self.ok:
            return f"chain {self.chain}: {self.entries} entries, intact"
        where = (f" at entry seq {self.broken_seq} (row id {self.broken_id})"
                 if self.broken_seq is not None else "")
        return f"chain {self.chain}: BROKEN{where}: {self.reason}"


def chains(session: Session) -> list[str]:
    names = set(session.exec(select(IceAuditHead.chain)).all())
    names |= set(session.exec(select(IceAuditEntry.chain).distinct()).all())
    return sorted(names)


def _rows(session: Session, chain: str) -> Iterator[IceAuditEntry]:
    query = (select(IceAuditEntry).where(IceAuditEntry.chain == chain)
             .order_by(IceAuditEntry.seq).execution_options(yield_per=500))  # type: ignore[arg-type]
    yield from session.exec(query)


def _reason(row: IceAuditEntry, previous: IceAuditEntry | None) -> str:
    expected_seq = previous.seq + 1 if previous else FIRST_SEQ
    if row.seq != expected_seq:
        return f"expected seq {expected_seq}: an entry was deleted or the order changed"
    expected_prev = previous.hash if previous else GENESIS
    if row.prev_hash != expected_prev:
        return "it does not link to the entry before it (that entry was altered or replaced)"
    return "its contents do not match its hash (the entry was altered)"


def verify(session: Session, chain: str, anchors_: AuditAnchors | None = None) -> ChainReport:
    """Check one chain from genesis to its head, and against its anchor outside the
    database when ``anchors_`` is given."""
    seen: list[IceAuditEntry] = []
    count = 0
    try:
        anchor = anchors_.read(chain) if anchors_ is not None else None
    except AnchorTampered as exc:
        return ChainReport(chain, 0, None, None, str(exc))
    anchored_hash: str | None = None

    def linked() -> Iterator[_Linked]:
        nonlocal count, anchored_hash
        for row in _rows(session, chain):
            count += 1
            seen.append(row)
            if len(seen) > 2:
                seen.pop(0)
            if anchor is not None and row.seq == anchor.seq:
                anchored_hash = row.hash
            yield _Linked(row)

    broken = verify_chain(linked())
    if broken is not None:
        row = seen[-1]
        previous = seen[-2] if len(seen) > 1 else None
        return ChainReport(chain, count, broken, row.id, _reason(row, previous))
    head = session.get(IceAuditHead, chain)
    last = seen[-1] if seen else None
    if head is not None and (head.seq != (last.seq if last else 0)
                             or head.hash != (last.hash if last else GENESIS)):
        return ChainReport(chain, count, None, None,
                           f"the head records seq {head.seq} but the last entry is "
                           f"seq {last.seq if last else 0}: entries were removed from the end "
                           "or the head was altered")
    if anchor is not None and anchored_hash != anchor.hash:
        if last is None or last.seq < anchor.seq:
            reason = (f"the anchor kept outside the database records seq {anchor.seq} but "
                      f"the chain ends at seq {last.seq if last else 0}: entries were "
                      "removed from the end (and the head row with them)")
        else:
            reason = (f"entry seq {anchor.seq} is not the one the anchor kept outside the "
                      "database records: the chain was rewritten from there on")
        return ChainReport(chain, count, None, None, reason)
    if anchors_ is not None and last is not None:
        anchors_.record(chain, last.seq, last.hash)  # a checkpoint for chains not yet anchored
    return ChainReport(chain, count)


def verify_all(session: Session, only: str | None = None,
               anchors_: AuditAnchors | None = None) -> list[ChainReport]:
    names = [only] if only else sorted(
        set(chains(session)) | set(anchors_.chains() if anchors_ is not None else []))
    return [verify(session, name, anchors_) for name in names]


def timeline(session: Session, *, exchange_id: str, chains_: set[str]) -> list[IceAuditEntry]:
    """Entries about one exchange from the given chains, oldest first."""
    if not chains_:
        return []
    query = (select(IceAuditEntry)
             .where(IceAuditEntry.exchange_id == exchange_id,
                    IceAuditEntry.chain.in_(sorted(chains_)))  # type: ignore[attr-defined]
             .order_by(IceAuditEntry.at, IceAuditEntry.id))  # type: ignore[arg-type]
    return list(session.exec(query))
