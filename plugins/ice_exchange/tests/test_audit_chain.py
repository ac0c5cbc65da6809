"""Tests for the hash-chained audit log: tampering must point at the right entry."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from caseforum_ice_exchange.audit_chain import (
    GENESIS,
    ChainRecord,
    entry_hash,
    next_entry,
    verify_chain,
)


def build_chain(n: int) -> list[ChainRecord]:
    entries: list[ChainRecord] = []
    for i in range(n):
        previous = entries[-1] if entries else None
        fields = {"event": "parcel.sent", "parcel_id": f"EP-{i}", "actor": "examiner-7"}
        entries.append(next_entry(previous, fields))
    return entries


def test_intact_chain_verifies() -> None:
    chain = build_chain(6)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5, 6]
    assert chain[0].prev_hash == GENESIS
    assert all(chain[i].prev_hash == chain[i - 1].hash for i in range(1, 6))
    assert verify_chain(chain) is None


def test_empty_chain_is_intact() -> None:
    assert verify_chain([]) is None


def test_edited_fields_are_reported_at_that_entry() -> None:
    chain = build_chain(6)
    chain[3] = dataclasses.replace(chain[3], fields={**chain[3].fields, "actor": "intruder"})
    assert verify_chain(chain) == 4


def test_edit_with_recomputed_hash_breaks_the_next_link() -> None:
    chain = build_chain(6)
    edited = {**chain[2].fields, "parcel_id": "EP-999"}
    chain[2] = dataclasses.replace(
        chain[2], fields=edited, hash=entry_hash(chain[2].prev_hash, 3, edited)
    )
    assert verify_chain(chain) == 4


def test_deleted_entry_is_reported_as_a_gap() -> None:
    chain = build_chain(6)
    del chain[2]  # seq 3
    assert verify_chain(chain) == 4


def test_deleted_entry_shows_as_gap_even_if_later_hashes_are_redone() -> None:
    """An intruder who re-links and re-hashes everything still leaves the seq gap."""
    chain = build_chain(6)
    del chain[2]  # seq 3
    relinked: list[ChainRecord] = chain[:2]
    for entry in chain[2:]:
        prev = relinked[-1].hash
        relinked.append(
            ChainRecord(entry.seq, prev, entry_hash(prev, entry.seq, entry.fields), entry.fields)
        )
    assert verify_chain(relinked) == 4


def test_deleting_the_first_entry_is_detected() -> None:
    assert verify_chain(build_chain(4)[1:]) == 2


def test_swapped_entries_are_detected() -> None:
    chain = build_chain(5)
    chain[1], chain[2] = chain[2], chain[1]
    assert verify_chain(chain) == 3


def test_renumbered_entry_is_detected() -> None:
    chain = build_chain(5)
    chain[4] = dataclasses.replace(chain[4], seq=6)
    assert verify_chain(chain) == 6


def test_wrong_prev_link_is_detected() -> None:
    chain = build_chain(5)
    bogus_prev = "f" * 64
    chain[2] = dataclasses.replace(
        chain[2], prev_hash=bogus_prev, hash=entry_hash(bogus_prev, 3, chain[2].fields)
    )
    assert verify_chain(chain) == 3


def test_unhashable_stored_fields_are_reported_not_raised() -> None:
    chain = build_chain(3)
    chain[1] = dataclasses.replace(chain[1], fields={"amount": 1.5})
    assert verify_chain(chain) == 2


def test_hash_binds_position_but_not_key_order() -> None:
    fields = {"event": "receipt.signed", "parcel_id": "EP-1"}
    h = entry_hash(GENESIS, 1, fields)
    assert h == entry_hash(GENESIS, 1, dict(reversed(list(fields.items()))))
    assert h != entry_hash(GENESIS, 2, fields)
    assert h != entry_hash("1" * 64, 1, fields)
    with pytest.raises(ValueError, match="prev_hash"):
        entry_hash("not a hash", 1, fields)


def test_database_rows_can_be_verified_directly() -> None:
    """Any object with seq/prev_hash/hash/fields works, e.g. an ORM row."""
    rows = [
        SimpleNamespace(seq=e.seq, prev_hash=e.prev_hash, hash=e.hash, fields=dict(e.fields))
        for e in build_chain(3)
    ]
    assert verify_chain(rows) is None
    rows[2].fields["actor"] = "someone else"
    assert verify_chain(rows) == 3


def test_verification_can_resume_from_a_checkpoint() -> None:
    chain = build_chain(6)
    checkpoint = chain[2]
    tail = chain[3:]
    assert verify_chain(tail, start_seq=checkpoint.seq + 1, start_prev=checkpoint.hash) is None
    assert verify_chain(tail, start_seq=4, start_prev=GENESIS) == 4
