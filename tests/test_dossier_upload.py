"""Putting dossiers in: validation, idempotency, packages, families, storage."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import select

from caseforum.cli import cli
from caseforum.models import Application, Document, Event
from tests.dossier_helpers import dossier_json, package_bytes, pdf_bytes, token_for, upload


@pytest.fixture
def us(client: TestClient, db) -> dict[str, str]:
    return token_for(db, "us.admin")


def _files(data_dir: Path) -> list[Path]:
    root = data_dir / "files"
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] != "tmp")


def _count(db, model) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(model)).one()


def us_dossier(**extra):
    return dossier_json("US", "16/123,456", publication_number="US 2019/0094321 A1", **extra)


def test_create_then_update_and_loose_number_forms(client, us) -> None:
    first = client.post("/api/v1/dossiers", headers=us, json=us_dossier())
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["application_number"] == "16123456"
    assert body["display_number"] == "16/123,456"
    again = client.post("/api/v1/dossiers", headers=us,
                        json={**us_dossier(), "application_number": "US16123456",
                              "title": "Renamed"})
    assert again.status_code == 200
    for form in ("16123456", "US 16 123 456", "us16123456"):  # path forms: no slash
        got = client.get(f"/api/v1/dossiers/US/{form}", headers=us)
        assert got.status_code == 200 and got.json()["title"] == "Renamed"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"publication_number": None, "publication_date": None}, "unpublished application"),
        ({"application_number": "16/12"}, "application_number"),
        ({"office": "ZZ"}, "unknown office"),
        ({"filing_date": "2018-13-45"}, "filing_date"),
        ({"publication_date": "2017-01-01"}, "publication_date: comes before filing_date"),
        ({"filing_date": "2999-01-01"}, "in the future"),
        ({"priorities": [{"office": "JP", "number": "12", "date": "2017-09-28"}]},
         "priorities[0].number"),
        ({"pct_application_number": "16123456"}, "pct_application_number"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_bad_dossier_is_refused_with_a_reason_and_nothing_stored(
    client, us, db, change, fragment
) -> None:
    before = _count(db, Application), _count(db, Event)
    response = client.post("/api/v1/dossiers", headers=us, json={**us_dossier(), **change})
    assert response.status_code in (403, 422), response.text
    if change.get("office") != "ZZ":
        assert response.status_code == 422
        assert fragment in response.json()["detail"]
    assert (_count(db, Application), _count(db, Event)) == before


def test_us_cannot_provide_for_jp(client, us) -> None:
    response = client.post("/api/v1/dossiers", headers=us,
                           json=dossier_json("JP", "2017-187096"))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"),
    [
        ({"code": "NO PE"}, 422, "document code 'NO PE' must be 1 to 20 characters"),
        ({"code": "A" * 21}, 422, "at most 20 characters"),
        ({"visibility": "secret"}, 422, "use public, offices or restricted"),
        ({"visibility": "restricted"}, 422, "needs the offices"),
        ({"visibility": "restricted", "offices": "QQ"}, 422, "unknown office 'QQ'"),
        ({"date": "2999-01-01"}, 422, "in the future"),
        ({"content": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"}, 422, "unsupported file type"),
        ({"content": b""}, 422, "empty"),
    ],
)
def test_bad_document_is_refused_and_no_file_kept(
    client, us, db, data_dir, kwargs, status, fragment
) -> None:
    assert client.post("/api/v1/dossiers", headers=us, json=us_dossier()).status_code == 201
    files_before = _files(data_dir)
    docs_before = _count(db, Document)
    content = kwargs.pop("content", pdf_bytes("a search report"))
    response = upload(client, us, "US", "16123456", content, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert _count(db, Document) == docs_before
    assert _files(data_dir) == files_before


def test_oversize_upload_is_413_and_leaves_nothing(client, us, db, data_dir, app) -> None:
    app.state.settings.max_upload_mb = 1
    client.post("/api/v1/dossiers", headers=us, json=us_dossier())
    before = _count(db, Document), _files(data_dir)
    big = b"%PDF-1.4\n" + b"0" * (1024 * 1024 + 10)
    response = upload(client, us, "US", "16123456", big)
    assert response.status_code == 413
    assert "limit is 1 MB" in response.json()["detail"]
    assert (_count(db, Document), _files(data_dir)) == before


def test_document_is_stored_by_content_hash_with_text_and_safe_name(
    client, us, db, data_dir
) -> None:
    client.post("/api/v1/dossiers", headers=us, json=us_dossier())
    content = pdf_bytes("Claim 1. A heat exchanger comprising layered fins.")
    response = upload(client, us, "US", "16123456", content, code="CLM",
                      filename="../../etc/passwd claims.pdf")
    assert response.status_code == 201
    doc = response.json()
    import hashlib

    assert doc["sha256"] == hashlib.sha256(content).hexdigest()
    assert doc["size"] == len(content)
    assert doc["media_type"] == "application/pdf"
    assert "/" not in doc["filename"] and ".." not in doc["filename"]
    stored = db.get(Document, doc["id"])
    assert "layered fins" in stored.text_content
    download = client.get(f"/api/v1/documents/{doc['id']}/content", headers=us)
    assert download.content == content
    assert download.headers["content-disposition"].startswith("attachment;")


def test_idempotency_key_replays_the_first_answer(client, us, db) -> None:
    client.post("/api/v1/dossiers", headers=us, json=us_dossier())
    before = _count(db, Document)
    key = {"Idempotency-Key": "upload-2019-05-01-srpt"}
    first = upload(client, us, "US", "16123456", pdf_bytes("report"), extra_headers=key)
    second = upload(client, us, "US", "16123456", pdf_bytes("report"), extra_headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    assert _count(db, Document) == before + 1
    other = upload(client, us, "US", "16123456", pdf_bytes("report"), code="CTNF",
                   extra_headers=key)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]


def test_families_link_through_priorities_and_the_pct_route(client, db) -> None:
    from caseforum import accounts

    accounts.create_user(db, username="ib.officer", office_code="IB", role="office_admin",
                         password=None)
    db.commit()
    jp, us_h, ib = (token_for(db, u) for u in ("jp.examiner", "us.admin", "ib.officer"))
    prio = [{"office": "JP", "number": "2017-187096", "date": "2017-09-28"}]
    assert client.post("/api/v1/dossiers", headers=us_h, json=us_dossier(
        priorities=prio, filing_date="2018-09-27")).status_code == 201
    # the PCT application (IB) and a KR national phase that claims only the PCT route
    assert client.post("/api/v1/dossiers", headers=ib, json=dossier_json(
        "IB", "PCT/JP2018/035123", publication_number="WO 2019/065432 A1",
        filing_date="2018-09-26", priorities=prio)).status_code == 201, "PCT"
    kr = token_for(db, "kr.examiner")
    made = client.post("/api/v1/dossiers", headers=kr, json=dossier_json(
        "KR", "10-2020-7012345", publication_number="KR 1020200045678 A",
        filing_date="2020-03-26", publication_date="2020-09-01",
        pct_application_number="PCT/JP2018/035123"))
    assert made.status_code == 201, made.text
    family = {(m["office"], m["application_number"]) for m in made.json()["family"]}
    assert family == {("US", "16123456"), ("IB", "JP2018035123"), ("KR", "1020207012345")}
    # the priority application itself joins when JP provides it
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28"))
    fam = client.get("/api/v1/dossiers/US/16123456/family", headers=us_h).json()
    # US (providing only) sees only its own dossier in the family
    assert [m["office"] for m in fam] == ["US"]
    fam_kr = client.get("/api/v1/dossiers/KR/1020207012345/family", headers=kr).json()
    assert {m["office"] for m in fam_kr} == {"JP", "US", "IB", "KR"}
    # merged families leave no empty family behind
    from caseforum.models import Family

    db.expire_all()
    used = set(db.exec(select(Application.family_id)))
    assert set(db.exec(select(Family.id))) == used


def test_new_document_writes_an_event(client, us, db) -> None:
    client.post("/api/v1/dossiers", headers=us, json=us_dossier())
    upload(client, us, "US", "16123456", pdf_bytes("r"))
    kinds = db.exec(select(Event.kind).order_by(Event.id.desc()).limit(2)).all()
    assert kinds == ["document.added", "dossier.created"]


# Packages ------------------------------------------------------------------------------

MANIFEST = {
    "office": "US",
    "dossiers": [{
        **dossier_json("US", "16/740,760", publication_number="US 2020/0150123 A1"),
        "documents": [
            {"file": "docs/ctnf.pdf", "code": "CTNF", "date": "2020-06-01"},
            {"file": "docs/892.pdf", "code": "892", "date": "2020-06-01",
             "visibility": "public"},
        ],
        "citations": [{"cited": "US 9,876,543 B2", "category": "X", "claims": "1-3",
                       "phase": "examination", "document": "docs/892.pdf"}],
    }],
}
FILES = {"docs/ctnf.pdf": pdf_bytes("Non-final rejection"),
         "docs/892.pdf": pdf_bytes("References cited")}


def test_package_lands_whole_and_repeating_it_changes_nothing(client, us, db) -> None:
    package = package_bytes(MANIFEST, FILES)
    docs_before = _count(db, Document)
    first = client.post("/api/v1/packages", headers=us,
                        files={"package": ("p.zip", package, "application/zip")})
    assert first.status_code == 201, first.text
    assert first.json()["documents"] == 2 and first.json()["citations"] == 1
    events = _count(db, Event)
    second = client.post("/api/v1/packages", headers=us,
                         files={"package": ("p.zip", package, "application/zip")})
    assert second.status_code == 200
    assert second.json()["already_imported"] is True
    assert _count(db, Document) == docs_before + 2 and _count(db, Event) == events


def _broken(name: str) -> bytes:
    if name == "not a zip":
        return b"PK\x03\x04 this is not really a zip"
    if name == "no manifest":
        return package_bytes({}, {}).replace(b"manifest.json", b"manifesto.jsn")
    if name == "path trick":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("manifest.json", "{}")
            archive.writestr("../../evil.pdf", FILES["docs/ctnf.pdf"])
        return buffer.getvalue()
    if name == "missing file":
        return package_bytes(MANIFEST, {"docs/ctnf.pdf": FILES["docs/ctnf.pdf"]})
    if name == "bad code in second document":
        manifest = {**MANIFEST, "dossiers": [{**MANIFEST["dossiers"][0], "documents": [
            MANIFEST["dossiers"][0]["documents"][0],
            {**MANIFEST["dossiers"][0]["documents"][1], "code": "WHAT?"}]}]}
        return package_bytes(manifest, FILES)
    if name == "bad category":
        manifest = {**MANIFEST, "dossiers": [{**MANIFEST["dossiers"][0], "citations": [
            {**MANIFEST["dossiers"][0]["citations"][0], "category": "Q"}]}]}
        return package_bytes(manifest, FILES)
    if name == "wrong office":
        return package_bytes({**MANIFEST, "office": "JP"}, FILES)
    if name == "exe inside":
        return package_bytes(MANIFEST, {**FILES, "docs/892.pdf": b"MZ\x90\x00rest"})
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["not a zip", "no manifest", "path trick", "missing file",
                                  "bad code in second document", "bad category",
                                  "wrong office", "exe inside"])
def test_broken_package_is_refused_and_nothing_lands(client, us, db, data_dir, name) -> None:
    before = (_count(db, Application), _count(db, Document), _count(db, Event))
    files_before = _files(data_dir)
    response = client.post("/api/v1/packages", headers=us,
                           files={"package": ("p.zip", _broken(name), "application/zip")})
    assert response.status_code in (403, 422), response.text
    assert response.json()["detail"]
    assert (_count(db, Application), _count(db, Document), _count(db, Event)) == before
    assert _files(data_dir) == files_before


def test_cli_import_and_its_one_line_error(data_dir, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    good = tmp_path / "good.zip"
    good.write_bytes(package_bytes(MANIFEST, FILES))
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported 1 dossiers, 2 documents, 1 citations for US" in result.output
    again = runner.invoke(cli, ["import", str(good)])
    assert "already imported" in again.output
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_broken("path trick"))
    failed = runner.invoke(cli, ["import", str(bad)])
    assert failed.exit_code == 1
    assert len(failed.output.strip().splitlines()) == 1
    assert "unsafe path" in failed.output
