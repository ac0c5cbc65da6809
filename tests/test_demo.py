"""The demo dossiers: enough families, offices, documents and rules to show every
dossier feature, loaded through the real data functions, and safe to load twice."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from sqlalchemy import func
from sqlmodel import select

from caseforum import accounts
from caseforum.app import build_doc_types
from caseforum.cli import cli
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.demo_dossiers import demo_applications, demo_families, load_demo_dossiers
from caseforum.dossiers import service
from caseforum.dossiers.compare import compare_texts
from caseforum.models import (
    Application,
    Citation,
    Document,
    DocumentOffice,
    Event,
    Priority,
    User,
)
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database, load_demo
from caseforum.storage import FileStore


def _app(db, office: str, number: str) -> Application:
    app = service.get_dossier(db, office=office, number=number)
    assert app is not None, f"demo dossier {office} {number} missing"
    return app


def _docs(db, app: Application) -> list[Document]:
    return list(db.exec(select(Document).where(Document.application_id == app.id)))


def _loaded_host() -> PluginHost:
    host = PluginHost()
    host.load()
    return host


def _counts(db) -> tuple[int, ...]:
    db.expire_all()
    return tuple(db.exec(select(func.count()).select_from(m)).one()
                 for m in (Application, Document, Citation, Event, Priority, DocumentOffice))


def test_at_least_four_families_across_at_least_four_offices(db) -> None:
    apps = demo_applications(db)
    assert len(apps) == sum(len(f) for f in demo_families())
    families = {a.family_id for a in apps}
    assert len(families) >= 4
    assert len({a.office_code for a in apps}) >= 5
    assert {"JP", "IB", "US", "CN", "KR", "AU", "GB"} <= {a.office_code for a in apps}
    assert any(a.kind == "pct" for a in apps)


def test_every_member_of_a_family_is_linked_and_no_two_families_merge(db) -> None:
    seen: set[int] = set()
    for family in demo_families():
        ids = {_app(db, d.office, d.number).family_id for d in family}
        assert len(ids) == 1 and None not in ids, [d.number for d in family]
        family_id = ids.pop()
        assert family_id not in seen
        seen.add(family_id)
        members = db.exec(select(Application).where(Application.family_id == family_id)).all()
        assert len(members) == len(family)


def test_dates_are_consistent_and_in_the_past(db) -> None:
    today = date.today()
    for app in demo_applications(db):
        assert app.filing_date <= app.publication_date < today
        for p in db.exec(select(Priority).where(Priority.application_id == app.id)):
            assert p.date < app.filing_date
        for doc in _docs(db, app):
            assert app.filing_date <= doc.date < today, (app.key, doc.filename)


def test_pdfs_have_text_layers_except_the_scan(db, settings) -> None:
    store = FileStore(settings.storage_dir)
    media = Counter()
    scans = []
    for app in demo_applications(db):
        for doc in _docs(db, app):
            media[doc.media_type] += 1
            if doc.media_type != "application/pdf":
                assert doc.text_content.strip()
                continue
            with store.open(doc.sha256) as handle:
                reader = PdfReader(io.BytesIO(handle.read()))
            text = "".join(page.extract_text() or "" for page in reader.pages).strip()
            if not text:
                scans.append(doc)
            else:
                assert doc.text_content.strip()
    assert media["application/pdf"] >= 40 and media["text/plain"] >= 4
    assert len(scans) == 1 and scans[0].pages == 1 and scans[0].text_content == ""


def test_documents_cover_the_code_list_and_languages(db) -> None:
    docs = [d for app in demo_applications(db) for d in _docs(db, app)]
    codes = {d.code for d in docs}
    assert {"SRPT", "ISR", "WOISA", "SRNT", "CTNF", "CTFR", "NOA", "CLM", "AMND", "REM",
            "PPH", "EXRP"} <= codes
    assert {"ja", "ko"} <= {d.language for d in docs if not d.is_translation}
    assert sum(d.is_translation for d in docs) >= 10


def test_amended_claims_differ_from_the_claims_as_filed(db) -> None:
    for office, number in (("US", "17/436,205"), ("US", "16/991,574"), ("GB", "2019874.9"),
                           ("KR", "10-2020-0086143")):
        docs = {d.code: d for d in _docs(db, _app(db, office, number))
                if d.media_type == "application/pdf"}
        rows = compare_texts(docs["CLM"].text_content, docs["AMND"].text_content)
        changed = [r for r in rows if r.tag != "equal"]
        assert changed and len(changed) < len(rows), (office, number)
    us = {d.code: d for d in _docs(db, _app(db, "US", "17/436,205"))}
    assert "Cancelled" in us["AMND"].text_content and "1.2 to 1.8" in us["AMND"].text_content
    assert "1.2 to 1.8" not in us["CLM"].text_content


def test_visibilities_are_mixed_with_restricted_documents_for_named_offices(db) -> None:
    docs = [d for app in demo_applications(db) for d in _docs(db, app)]
    kinds = Counter(str(d.visibility) for d in docs)
    assert kinds["offices"] > kinds["public"] > 0 and kinds["restricted"] >= 2
    jp_search = next(d for d in _docs(db, _app(db, "JP", "2019-041872")) if d.code == "SRPT")
    named = set(db.exec(select(DocumentOffice.office_code).where(
        DocumentOffice.document_id == jp_search.id)))
    assert str(jp_search.visibility) == "restricted" and named == {"CN", "KR"}


def test_family_members_cite_the_same_prior_art_linked_to_their_reports(db) -> None:
    citing_offices = set(db.exec(select(Citation.citing_office).where(
        Citation.cited_number == "JP2016207528")))
    assert {"JP", "IB", "US", "CN", "KR", "AU", "GB"} <= citing_offices
    citations = db.exec(select(Citation)).all()
    assert {"X", "Y", "A", "P,A"} <= {c.category for c in citations}
    assert all(c.document_id is not None for c in citations)
    assert any(c.cited_number is None for c in citations)  # non-patent literature too


def test_loading_twice_adds_nothing(engine, db, settings, data_dir: Path) -> None:
    files = sorted(p.name for p in (data_dir / "files").rglob("*") if p.is_file())
    before = _counts(db)
    store = FileStore(settings.storage_dir)
    assert load_demo_dossiers(engine, store, build_doc_types(_loaded_host())) == 0
    assert _counts(db) == before
    assert sorted(p.name for p in (data_dir / "files").rglob("*") if p.is_file()) == files


def test_a_missing_document_is_added_back_alone(engine, db, settings) -> None:
    app = _app(db, "GB", "2019874.9")
    doc = next(d for d in _docs(db, app) if d.code == "REM")
    db.delete(doc)
    db.commit()
    before = _counts(db)
    added = load_demo_dossiers(engine, FileStore(settings.storage_dir),
                               build_doc_types(_loaded_host()))
    assert added == 1
    after = _counts(db)
    assert after[1] == before[1] + 1 and after[0] == before[0] and after[2] == before[2]


def test_dossier_page_shows_family_citations_and_documents_to_an_accessing_examiner(
    as_user,
) -> None:
    client, _ = as_user("kr.examiner")
    page = client.get("/dossiers/JP/2019041872")
    assert page.status_code == 200
    text = page.text
    for member in ("PCT/JP2020/009517", "17/436,205", "202080019375.4", "10-2021-7028846",
                   "2020231647", "2113871.2"):
        assert member in text
    assert "JP 2016-207528 A" in text and 'class="cat cat-X"' in text
    assert 'class="cat cat-Y"' in text and 'class="cat cat-A"' in text
    assert "vis-restricted" in text  # the search report shared with KR and CN


def test_restricted_document_and_its_citations_are_absent_for_other_offices(as_user) -> None:
    kr, _ = as_user("kr.examiner")
    au, _ = as_user("au.examiner")
    kr_page, au_page = kr.get("/dossiers/JP/2019041872").text, au.get(
        "/dossiers/JP/2019041872").text
    assert "vis-restricted" in kr_page and "vis-restricted" not in au_page
    # the registered searching organisation's report cites US 2017/0222257 A1 only there
    assert "US 2017/0222257 A1" in kr_page and "US 2017/0222257 A1" not in au_page


def test_comparison_shows_the_claim_amendments_and_the_scan_side_by_side(as_user, db) -> None:
    client, _ = as_user("gb.examiner")
    us = {d.code: d.id for d in _docs(db, _app(db, "US", "17/436,205"))}
    diff = client.get(f"/compare?a={us['CLM']}&b={us['AMND']}")
    assert diff.status_code == 200 and "<del>" in diff.text and "<ins>" in diff.text
    scan = client.get(f"/compare?a={us['CLM']}&b={us['OTHER']}")
    assert scan.status_code == 200 and "no text layer" in scan.text


def test_api_gives_citations_with_categories_and_citing_office(client, db) -> None:
    user = db.exec(select(User).where(User.username == "cn.examiner")).one()
    _, plain = accounts.create_token(db, user=user, scopes=["dossiers:read"])
    db.commit()
    got = client.get("/api/v1/dossiers/US/17436205", headers={"Authorization": f"Bearer {plain}"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert {(c["cited"], c["category"], c["citing_office"]) for c in body["citations"]} >= {
        ("JP 2016-207528 A", "X", "US"), ("WO 2018/047044 A1", "Y", "US")}
    assert len(body["family"]) == 7
    assert {d["code"] for d in body["documents"]} >= {"CLM", "CTNF", "AMND", "REM", "NOA"}


@pytest.fixture
def fresh_cli(tmp_path: Path, monkeypatch):
    folder = tmp_path / "fresh"
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(folder))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "d" * 32)
    return folder


def test_demo_command_loads_the_dossiers_once(fresh_cli: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["demo"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "/dossiers/JP/2019041872" in first.output
    engine = make_engine(load_settings())
    try:
        with open_session(engine) as session:
            before = _counts(session)
            assert before[0] == sum(len(f) for f in demo_families())
        again = runner.invoke(cli, ["demo"], catch_exceptions=False)
        assert again.exit_code == 0 and "(0 accounts added)" in again.output
        with open_session(engine) as session:
            assert _counts(session) == before
    finally:
        engine.dispose()
    assert len([p for p in (fresh_cli / "files").rglob("*") if p.is_file()]) >= 50


@pytest.mark.services
def test_demo_loads_on_postgresql_too_and_only_once(postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url, secret_key="q" * 32)
    engine = make_engine(settings)
    try:
        host = _loaded_host()
        init_database(engine, host)
        load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
        with open_session(engine) as session:
            before = _counts(session)
            assert before[0] == sum(len(f) for f in demo_families())
            assert len({a.family_id for a in demo_applications(session)}) == len(demo_families())
        store = FileStore(settings.storage_dir)
        assert load_demo_dossiers(engine, store, build_doc_types(host)) == 0
        with open_session(engine) as session:
            assert _counts(session) == before
    finally:
        engine.dispose()
