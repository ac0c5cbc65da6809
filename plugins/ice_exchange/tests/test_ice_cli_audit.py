"""Commands (keys, peers, ice) and the audit chain in the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from caseforum_ice_exchange import crypto, workflow
from caseforum_ice_exchange.cli import register
from caseforum_ice_exchange.config import Config, IceRuntime
from caseforum_ice_exchange.models import IceAuditEntry, IceOfficeKey
from caseforum_ice_exchange.routes import all_routes
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import select

from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import Office, User

SECRET = "c" * 32


@pytest.fixture
def run(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", SECRET)
    group = click.Group("caseforum")
    register(group)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(group, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def instance_engine(data_dir: Path):
    engine = make_engine(load_settings(data_dir=data_dir, secret_key=SECRET))
    yield engine
    engine.dispose()


def test_keys_generate_export_and_no_private_key_anywhere(run, instance_engine) -> None:
    made = run("keys", "generate", "--office", "jp")
    assert made.exit_code == 0, made.output
    assert "generated keys for JP" in made.output
    exported = run("keys", "export", "--office", "JP")
    record = json.loads(exported.output)
    imported = crypto.import_public(record)  # fingerprints check out
    assert record["office"] == "JP"
    assert record["ed25519_fingerprint"] in made.output
    with open_session(instance_engine) as session:
        row = session.get(IceOfficeKey, "JP")
        dump = json.dumps(row.model_dump(mode="json"))
    assert imported.signing_fingerprint == crypto.fingerprint(bytes(imported.verify_key))
    assert "private" not in exported.output.lower()
    # the wrapped blob opens only with the KEK derived from the secret
    import base64

    blob = base64.b64decode(row.wrapped_private)
    keys_back = crypto.unwrap_private_keys(
        blob, crypto.derive_kek(SECRET, base64.b64decode(row.kek_salt)))
    assert bytes(keys_back.signing_key) not in dump.encode()
    assert base64.b64encode(bytes(keys_back.signing_key)).decode() not in dump
    assert base64.b64encode(bytes(keys_back.signing_key)).decode() not in made.output

    again = run("keys", "generate", "--office", "JP")
    assert again.exit_code == 1 and "already has keys" in again.output
    assert run("keys", "generate", "--office", "XX").exit_code == 1
    assert "JP  hosted" in run("keys", "list").output


def test_peers_add_validates_the_key_file(run, tmp_path: Path, instance_engine) -> None:
    peer = crypto.generate_office_keys()
    good = tmp_path / "sg.json"
    good.write_text(json.dumps(crypto.export_public(peer, "SG")))
    added = run("peers", "add", "--office", "SG", "--url", "https://sg.example.org/",
                "--keys", str(good), "--role", "recipient")
    assert added.exit_code == 0, added.output
    assert peer.signing_fingerprint in added.output
    assert "https://sg.example.org" in run("peers", "list").output
    with open_session(instance_engine) as session:
        office = session.get(Office, "SG")
        assert office.peer_url == "https://sg.example.org"
        assert office.ice_role.value == "recipient"

    wrong_office = run("peers", "add", "--office", "KR", "--url", "https://kr.example.org",
                       "--keys", str(good))
    assert wrong_office.exit_code == 1 and "is for office SG, not KR" in wrong_office.output
    damaged = tmp_path / "bad.json"
    record = crypto.export_public(peer, "SG")
    record["ed25519_fingerprint"] = "0000:0000:0000:0000:0000:0000:0000:0000"
    damaged.write_text(json.dumps(record))
    result = run("peers", "add", "--office", "SG", "--url", "https://sg.example.org",
                 "--keys", str(damaged))
    assert result.exit_code == 1 and "does not match" in result.output
    bad_url = run("peers", "add", "--office", "SG", "--url", "ftp://x", "--keys", str(good))
    assert bad_url.exit_code == 1 and "base address" in bad_url.output
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    assert run("peers", "add", "--office", "SG", "--url", "https://a.b",
               "--keys", str(not_json)).exit_code == 1
    run("keys", "generate", "--office", "JP")
    hosted = run("peers", "add", "--office", "JP", "--url", "https://a.b", "--keys", str(good))
    assert hosted.exit_code == 1


def test_ice_demo_sets_roles_and_keys(run, instance_engine) -> None:
    result = run("ice", "demo")
    assert result.exit_code == 0, result.output
    assert "JP: ICE both, keys generated" in result.output
    with open_session(instance_engine) as session:
        roles = {code: session.get(Office, code).ice_role.value for code in ("JP", "SG", "AU")}
        assert roles == {"JP": "both", "SG": "recipient", "AU": "donor"}
        assert session.get(Office, "JP").providing  # other roles untouched
    again = run("ice", "demo")
    assert again.exit_code == 0 and "keys generated" not in again.output


def _exchange_with_history(engine: Any, data_dir: Path) -> str:
    settings = load_settings(data_dir=data_dir, secret_key=SECRET)
    rt = IceRuntime(engine=engine, settings=settings, config=Config(),
                    routes={r.name: r for r in all_routes()})
    from caseforum_ice_exchange import delivery, keys

    with open_session(engine) as session:
        for code, role in (("SG", "recipient"), ("JP", "both")):
            office = session.get(Office, code)
            office.ice_role = role
            session.add(office)
            keys.generate_keys(session, office_code=code, secret=SECRET)
        session.commit()
        sg = session.exec(select(User).where(User.username == "sg.examiner")).one()
        jp = session.exec(select(User).where(User.username == "jp.examiner")).one()
        exchange, parcel = workflow.open_request(session, rt=rt, user=sg, donor_office="JP",
                                                 application="JP 2017-187096", kind="search")
    assert delivery.deliver(rt, parcel.id) == "delivered"
    with open_session(engine) as session:
        accepted = workflow.take_step(session, rt=rt, user=jp, exchange_id=exchange.id,
                                      kind="accept")
    assert delivery.deliver(rt, accepted.id) == "delivered"
    return exchange.id


def test_verify_audit_names_the_edited_row(run, instance_engine, data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    intact = run("ice", "verify-audit")
    assert intact.exit_code == 0, intact.output
    assert "chain JP:" in intact.output and "intact" in intact.output

    with instance_engine.begin() as conn:
        row_id = conn.execute(text("SELECT id FROM ice_audit_entry WHERE chain = 'JP' AND seq = 3")
                              ).scalar_one()
        conn.execute(text("UPDATE ice_audit_entry SET detail = 'nothing to see' "
                          "WHERE chain = 'JP' AND seq = 3"))
    broken = run("ice", "verify-audit")
    assert broken.exit_code == 1
    assert f"chain JP: BROKEN at entry seq 3 (row id {row_id})" in broken.output
    assert "contents do not match" in broken.output
    assert "chain SG:" in broken.output and "intact" in broken.output  # others still checked
    only_sg = run("ice", "verify-audit", "--office", "sg")
    assert only_sg.exit_code == 0


def test_verify_audit_notices_deleted_and_reordered_entries(run, instance_engine,
                                                            data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    with open_session(instance_engine) as session:
        last = session.exec(select(IceAuditEntry).where(IceAuditEntry.chain == "SG")
                            .order_by(IceAuditEntry.seq.desc())).first()  # type: ignore[union-attr]
        last_seq = last.seq
    with instance_engine.begin() as conn:
        conn.execute(text("DELETE FROM ice_audit_entry WHERE chain = 'SG' AND seq = :s"),
                     {"s": last_seq})
    cut = run("ice", "verify-audit", "--office", "SG")
    assert cut.exit_code == 1 and "removed from the end" in cut.output

    with instance_engine.begin() as conn:
        conn.execute(text("DELETE FROM ice_audit_entry WHERE chain = 'JP' AND seq = 2"))
    gap = run("ice", "verify-audit", "--office", "JP")
    assert gap.exit_code == 1 and "seq 3" in gap.output and "deleted" in gap.output


def test_the_installed_command_exits_non_zero_on_a_broken_chain(data_dir: Path,
                                                                 instance_engine) -> None:
    _exchange_with_history(instance_engine, data_dir)
    with instance_engine.begin() as conn:
        conn.execute(text("UPDATE ice_audit_entry SET actor = 'someone' "
                          "WHERE chain = 'SG' AND seq = 2"))
    env = {**os.environ, "CASEFORUM_DATA_DIR": str(data_dir), "CASEFORUM_SECRET_KEY": SECRET}
    caseforum = Path(sys.executable).parent / "caseforum"
    done = subprocess.run([str(caseforum), "ice", "verify-audit"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "chain SG: BROKEN at entry seq 2" in done.stderr


def _chain_length(engine: Any, chain: str) -> int:
    with open_session(engine) as session:
        return len(session.exec(select(IceAuditEntry.id)
                                .where(IceAuditEntry.chain == chain)).all())


def test_verify_audit_notices_the_head_row_deleted_with_the_last_entries(
        run, instance_engine, data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    length = _chain_length(instance_engine, "SG")
    assert length >= 3
    anchor = json.loads((data_dir / "ice" / "audit-anchors" / "SG.json").read_text())
    assert anchor["seq"] == length  # written when the entries committed
    with instance_engine.begin() as conn:
        conn.execute(text("DELETE FROM ice_audit_entry WHERE chain = 'SG' AND seq > :s"),
                     {"s": length - 2})
        conn.execute(text("DELETE FROM ice_audit_head WHERE chain = 'SG'"))
    cut = run("ice", "verify-audit")
    assert cut.exit_code == 1
    assert (f"chain SG: BROKEN: the anchor kept outside the database records seq {length} "
            f"but the chain ends at seq {length - 2}") in cut.output
    assert "chain JP:" in cut.output and "intact" in cut.output


def test_verify_audit_notices_a_whole_chain_deleted(run, instance_engine,
                                                    data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    with instance_engine.begin() as conn:
        conn.execute(text("DELETE FROM ice_audit_entry WHERE chain = 'JP'"))
        conn.execute(text("DELETE FROM ice_audit_head WHERE chain = 'JP'"))
    gone = run("ice", "verify-audit")
    assert gone.exit_code == 1 and "chain JP: BROKEN" in gone.output
    assert "chain ends at seq 0" in gone.output


def test_a_forged_anchor_is_reported(run, instance_engine, data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    path = data_dir / "ice" / "audit-anchors" / "SG.json"
    anchor = json.loads(path.read_text())
    path.write_text(json.dumps({**anchor, "seq": 1}))  # someone hiding later entries
    forged = run("ice", "verify-audit", "--office", "SG")
    assert forged.exit_code == 1 and "was altered" in forged.output


def test_verify_audit_anchors_a_chain_that_had_no_anchor(run, instance_engine,
                                                         data_dir: Path) -> None:
    _exchange_with_history(instance_engine, data_dir)
    folder = data_dir / "ice" / "audit-anchors"
    for path in folder.glob("*.json"):
        path.unlink()  # entries written before anchors existed
    assert run("ice", "verify-audit").exit_code == 0
    length = _chain_length(instance_engine, "SG")
    assert json.loads((folder / "SG.json").read_text())["seq"] == length
    with instance_engine.begin() as conn:
        conn.execute(text("DELETE FROM ice_audit_entry WHERE chain = 'SG' AND seq = :s"),
                     {"s": length})
        conn.execute(text("UPDATE ice_audit_head SET seq = seq - 1, hash = (SELECT hash FROM "
                          "ice_audit_entry WHERE chain = 'SG' AND seq = :s) WHERE chain = 'SG'"),
                     {"s": length - 1})
    assert run("ice", "verify-audit", "--office", "SG").exit_code == 1
