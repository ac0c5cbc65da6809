"""Hash-chained audit log for ICE exchanges, as pure functions.

Each entry stores the hash of its predecessor and a hash over (previous hash, seq,
fields). Editing, reordering or deleting a stored entry therefore breaks the chain at
a point ``verify_chain`` can name, without trusting the database that holds it.

Limits worth knowing: an attacker who can rewrite the database can recompute every
hash after the entry they changed, and dropping entries from the *end* leaves a
shorter but valid chain. Both are caught only by comparing the latest hash with a
copy kept elsewhere (a signed receipt, a periodic export); this module just makes
such a comparison meaningful.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .crypto import canonical_json

__all__ = ["GENESIS", "ChainEntry", "ChainRecord", "entry_hash", "next_entry", "verify_chain"]

GENESIS = "0" * 64
"""``prev_hash`` of the first entry: there is nothing before it to link to."""

FIRST_SEQ = 1


class ChainEntry(Protocol):
    """Anything with these attributes can be verified, e.g. a database row."""

    @property
    def seq(self) -> int: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ChainRecord:
    """A plain, immutable chain entry, as produced by ``next_entry``."""

    seq: int
    prev_hash: str
    hash: str
    fields: Mapping[str, Any]


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def entry_hash(prev_hash: str, seq: int, fields: Mapping[str, Any]) -> str:
    """SHA-256 hex over the canonical JSON of ``{"prev", "seq", "fields"}``.

    Hashing the seq and the previous hash together with the fields is what ties each
    entry to its position: the same fields at another place give another hash.
    ``fields`` must be canonical-JSON friendly (no floats, no datetimes).
    """
    if not _is_hash(prev_hash):
        raise ValueError("prev_hash must be 64 lowercase hex digits")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("seq must be a non-negative integer")
    if not isinstance(fields, Mapping):
        raise TypeError("fields must be a mapping")
    payload = {"prev": prev_hash, "seq": seq, "fields": fields}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def next_entry(previous: ChainEntry | None, fields: Mapping[str, Any]) -> ChainRecord:
    """Build the entry that follows ``previous`` (or the first one, if None)."""
    prev_hash = GENESIS if previous is None else previous.hash
    seq = FIRST_SEQ if previous is None else previous.seq + 1
    return ChainRecord(seq, prev_hash, entry_hash(prev_hash, seq, fields), dict(fields))


def verify_chain(
    entries: Iterable[ChainEntry],
    *,
    start_seq: int = FIRST_SEQ,
    start_prev: str = GENESIS,
) -> int | None:
    """Seq of the first entry that breaks the chain, or None if it is intact.

    ``entries`` must be in the order they are stored, i.e. by ascending seq; the
    order is part of what is checked. An entry is broken when its seq is not the one
    expected (a gap, duplicate or reordering: the seq reported is that of the first
    entry after the gap), when its ``prev_hash`` is not the previous entry's hash,
    or when its own hash does not match its contents. ``start_seq``/``start_prev``
    let a caller resume from a checkpoint instead of the genesis entry.
    """
    expected_seq = start_seq
    expected_prev = start_prev
    for entry in entries:
        if entry.seq != expected_seq or entry.prev_hash != expected_prev:
            return entry.seq
        try:
            recomputed = entry_hash(entry.prev_hash, entry.seq, entry.fields)
        except (TypeError, ValueError):
            return entry.seq
        if recomputed != entry.hash:
            return entry.seq
        expected_prev = entry.hash
        expected_seq += 1
    return None
