"""The peer inbox refuses what it must not trust, says why, audits it, stores nothing.

JP's instance receives; the test plays SG's instance, building parcels by hand with
SG's keys (which JP's administrator imported as a peer), then spoiling them.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from caseforum_ice_exchange import crypto, keys, parcels
from caseforum_ice_exchange.audit import verify_all
from caseforum_ice_exchange.models import INSTANCE_CHAIN, IceAuditEntry, IceExchange, IceParcel
from fastapi.testclient import TestClient
from sqlmodel import func, select

from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session

from .conftest import take_part

SG_KEYS = crypto.generate_office_keys()
INTRUDER_KEYS = crypto.generate_office_keys()


class JpInbox:
    def __init__(self, client: TestClient, engine: Any, store: Path, jp_public: Any) -> None:
        self.client, self.engine, self.store, self.jp_public = client, engine, store, jp_public

    def post(self, envelope: dict[str, Any], **headers: str) -> Any:
        files = [(part, (f"{part}.bin", data, "application/octet-stream"))
                 for part, data in envelope["parts"].items()]
        return self.client.post("/api/v1/ice/inbox", headers=headers, files=files, data={
            "manifest": json.dumps(envelope["manifest"]), "signature": envelope["signature"]})

    def count(self, model: Any) -> int:
        with open_session(self.engine) as session:
            return session.exec(select(func.count()).select_from(model)).one()

    def refusals(self) -> list[IceAuditEntry]:
        with open_session(self.engine) as session:
            return list(session.exec(select(IceAuditEntry)
                                     .where(IceAuditEntry.action == "parcel.refused")
                                     .order_by(IceAuditEntry.id)))

    def stored_parcels(self) -> list[Path]:
        root = self.store / "parcels"
        return sorted(p for p in root.glob("*/*")) if root.exists() else []

    def snapshot(self) -> tuple[int, int, int, int]:
        """Parcels, exchanges, stored parcel folders, refusals: to compare after a post."""
        return (self.count(IceParcel), self.count(IceExchange), len(self.stored_parcels()),
                len(self.refusals()))


@pytest.fixture(scope="module")
def inbox(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JpInbox]:
    """JP's instance, shared by this module's tests: each one compares before and after."""
    folder = tmp_path_factory.mktemp("jp-inbox")
    shutil.copy(template_db, folder / "caseforum.db")
    settings = load_settings(data_dir=folder, secret_key="j" * 32,
                             plugins={"ice_exchange": {"max_parcel_mb": 1}})
    engine = make_engine(settings)
    take_part(engine, "j" * 32, {"JP": "both"})
    with open_session(engine) as session:
        keys.add_peer(session, office_code="SG", url="http://127.0.0.1:9",
                      record=crypto.export_public(SG_KEYS, "SG"), ice_role="recipient")
        session.commit()
        jp_public = keys.public_keys(session, "JP")
    with TestClient(create_app(settings)) as client:
        yield JpInbox(client, engine, folder / "ice", jp_public)
    engine.dispose()


def build(inbox: JpInbox, tmp_path: Path, *, kind: str = "request", sender: str = "SG",
          recipient: str = "JP", sequence: int = 1, exchange_id: str | None = None,
          signer: crypto.OfficeKeys = SG_KEYS, files: dict[str, bytes] | None = None,
          note: str = "Please search.") -> dict[str, Any]:
    """A parcel exactly as SG's instance would make it."""
    folder = tmp_path / uuid.uuid4().hex
    files = {"claims.txt": b"1. A widget." * 100} if files is None else files
    uploads = [parcels.Upload(name, "text/plain", io.BytesIO(data))
               for name, data in files.items()]
    note_entry, entries = parcels.encrypt_parcel(folder=folder, note=note, uploads=uploads,
                                                 recipient=inbox.jp_public, sender=signer,
                                                 max_bytes=50 * 1024 * 1024)
    request = None
    if kind == "request":
        request = {"recipient_office": sender, "donor_office": recipient,
                   "application": {"office": "JP", "number": "2017187096", "kind": "national",
                                   "display": "2017-187096"},
                   "kind": "search", "due_date": None}
    manifest = {
        "format": parcels.FORMAT, "parcel_id": str(uuid.uuid4()),
        "exchange_id": exchange_id or str(uuid.uuid4()), "kind": kind, "sender": sender,
        "recipient": recipient, "sequence": sequence, "created_at": "2026-11-24T10:00:00Z",
        "sent_by": "Examiner Tan (IPOS)", "request": request, "note": note_entry,
        "files": entries,
    }
    parts = {p.stem: p.read_bytes() for p in folder.glob("*.bin")}
    shutil.rmtree(folder)
    return {"manifest": manifest, "signature": crypto.sign_manifest(manifest, signer.signing_key),
            "parts": parts}


def refused(inbox: JpInbox, response: Any, before: tuple[int, int, int, int], *, status: int,
            code: str, chain: str = "JP") -> None:
    """Refused with a clear 4xx, one audit entry more, nothing else stored."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["detail"] and "Traceback" not in body["detail"]
    last = inbox.refusals()[-1]
    assert last.detail.startswith(f"{code}: ")
    assert last.chain == chain
    parcels_, exchanges, folders, refusals = before
    assert inbox.snapshot() == (parcels_, exchanges, folders, refusals + 1)
    assert not any((inbox.store / "staging").glob("*"))


def test_a_good_parcel_is_accepted_with_a_signed_receipt(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    before = inbox.snapshot()
    response = inbox.post(envelope)
    assert response.status_code == 201, response.text
    answer = response.json()
    with open_session(inbox.engine) as session:
        jp_keys = keys.public_keys(session, "JP")
    crypto.verify_receipt(answer["receipt"], answer["signature"], jp_keys.verify_key)
    assert answer["receipt"]["manifest_sha256"] == crypto.manifest_digest(envelope["manifest"])
    assert inbox.snapshot() == (before[0] + 1, before[1] + 1, before[2] + 1, before[3])


def test_tampered_ciphertext_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    spoiled = bytearray(envelope["parts"]["0"])
    spoiled[100] ^= 0x01
    envelope["parts"]["0"] = bytes(spoiled)
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=422, code="tampered")


def test_truncated_ciphertext_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    envelope["parts"]["0"] = envelope["parts"]["0"][:-17]
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=422, code="tampered")


def test_tampered_manifest_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    envelope["manifest"]["files"][0]["name"] = "other.txt"
    before = inbox.snapshot()
    response = inbox.post(envelope)
    refused(inbox, response, before, status=403, code="bad_signature")
    assert "changed after signing" in response.json()["detail"]


def test_signature_by_another_key_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path, signer=INTRUDER_KEYS)
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=403, code="bad_signature")


def test_garbage_signature_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    envelope["signature"] = base64.b64encode(b"x" * 64).decode()
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=403, code="bad_signature")


def test_unknown_peer_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path, sender="AU", signer=INTRUDER_KEYS)
    before = inbox.snapshot()
    response = inbox.post(envelope)
    refused(inbox, response, before, status=403, code="unknown_peer")
    assert "not a peer" in response.json()["detail"]


def test_parcel_for_another_office_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path, recipient="KR")
    before = inbox.snapshot()
    response = inbox.post(envelope)
    refused(inbox, response, before, status=422, code="misaddressed", chain=INSTANCE_CHAIN)
    assert "KR" in response.json()["detail"]


def test_replayed_parcel_is_refused_but_returns_the_original_receipt(
        inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    first = inbox.post(envelope)
    assert first.status_code == 201
    before = inbox.snapshot()
    again = inbox.post(envelope)
    refused(inbox, again, before, status=409, code="replay")
    assert again.json()["receipt"] == first.json()["receipt"]
    assert again.json()["signature"] == first.json()["signature"]


def test_old_sequence_number_is_refused_as_replay(inbox: JpInbox, tmp_path: Path) -> None:
    request = build(inbox, tmp_path)
    assert inbox.post(request).status_code == 201
    exchange_id = request["manifest"]["exchange_id"]
    again = build(inbox, tmp_path, kind="documents", exchange_id=exchange_id, sequence=1)
    before = inbox.snapshot()
    response = inbox.post(again)
    refused(inbox, response, before, status=409, code="replay")
    assert "sequence 1 from SG was already used" in response.json()["detail"]
    fresh = build(inbox, tmp_path, kind="documents", exchange_id=exchange_id, sequence=2)
    assert inbox.post(fresh).status_code == 201


def test_step_that_does_not_fit_the_state_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    request = build(inbox, tmp_path)
    assert inbox.post(request).status_code == 201
    ack = build(inbox, tmp_path, kind="acknowledge", sequence=2, files={},
                exchange_id=request["manifest"]["exchange_id"])
    before = inbox.snapshot()
    refused(inbox, inbox.post(ack), before, status=409, code="invalid_transition")


def test_unknown_exchange_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path, kind="documents", sequence=2)
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=409, code="unknown_exchange")


def test_oversize_parcel_is_refused_before_it_is_read(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path, files={"big.bin": b"\0" * (3 * 1024 * 1024)})
    before = inbox.snapshot()
    response = inbox.post(envelope, **{"X-Ice-Recipient": "JP", "X-Ice-Sender": "SG"})
    refused(inbox, response, before, status=413, code="oversize")


def test_oversize_declared_in_the_manifest_is_refused(inbox: JpInbox, tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    envelope["manifest"]["files"][0]["ciphertext_size"] = 5 * 1024 * 1024
    envelope["signature"] = crypto.sign_manifest(envelope["manifest"], SG_KEYS.signing_key)
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=413, code="oversize")


@pytest.mark.parametrize("mangle", [
    lambda e: e["manifest"].pop("sequence"),
    lambda e: e["manifest"].update(sequence=True),
    lambda e: e["manifest"].update(extra="field"),
    lambda e: e["manifest"]["files"][0].update(name="../../etc/passwd"),
    lambda e: e["parts"].update({"7": b"junk"}),
    lambda e: e["parts"].pop("0"),
    lambda e: e["manifest"]["files"][0].update(name="claims\u202etxt.exe"),
    lambda e: e["manifest"]["files"][0].update(name="\u2067claims.txt"),
    lambda e: e["manifest"]["files"][0].update(name="claims\u200f.txt"),
    lambda e: e["manifest"]["files"][0].update(name="claims\x85.txt"),
    lambda e: e["manifest"]["files"][0].update(name="claims\x1b[2J.txt"),
], ids=["missing-field", "bool-for-int", "unknown-field", "path-in-name", "extra-part",
        "missing-part", "bidi-override", "bidi-isolate", "bidi-mark", "c1-control",
        "c0-control"])
def test_malformed_parcels_are_refused_with_400(inbox: JpInbox, tmp_path: Path, mangle) -> None:
    envelope = build(inbox, tmp_path)
    mangle(envelope)
    envelope["signature"] = crypto.sign_manifest(envelope["manifest"], SG_KEYS.signing_key)
    before = inbox.snapshot()
    refused(inbox, inbox.post(envelope), before, status=400, code="malformed")


def test_bidi_file_name_is_refused_saying_which_character(inbox: JpInbox,
                                                          tmp_path: Path) -> None:
    envelope = build(inbox, tmp_path)
    envelope["manifest"]["files"][0]["name"] = "report\u202efdp.exe"  # shows as "reportexe.pdf"
    envelope["signature"] = crypto.sign_manifest(envelope["manifest"], SG_KEYS.signing_key)
    before = inbox.snapshot()
    response = inbox.post(envelope)
    refused(inbox, response, before, status=400, code="malformed")
    assert "control or bidi characters (U+202E)" in response.json()["detail"]
    assert "U+202E" in inbox.refusals()[-1].detail


def test_garbage_bodies_never_cause_a_500(inbox: JpInbox) -> None:
    client = inbox.client
    before = inbox.snapshot()
    assert client.post("/api/v1/ice/inbox", content=b"not multipart",
                       headers={"Content-Type": "multipart/form-data; boundary=x"}
                       ).status_code == 400
    assert client.post("/api/v1/ice/inbox", data={"manifest": "{", "signature": "x"}
                       ).status_code == 400
    assert client.post("/api/v1/ice/inbox", data={"manifest": "[]", "signature": "x"}
                       ).status_code == 400
    assert client.post("/api/v1/ice/inbox", data={"signature": "x"}).status_code == 400
    assert client.post("/api/v1/ice/inbox", json={"manifest": {}}).status_code == 400
    assert inbox.snapshot()[:3] == before[:3]


def test_refusals_leave_the_audit_chains_intact(inbox: JpInbox, tmp_path: Path) -> None:
    inbox.post(build(inbox, tmp_path, signer=INTRUDER_KEYS))
    inbox.post(build(inbox, tmp_path, recipient="KR"))
    with open_session(inbox.engine) as session:
        reports = verify_all(session)
    assert reports and all(report.ok for report in reports)
    assert {r.chain for r in reports} >= {"JP", INSTANCE_CHAIN}
