"""The dossier API answer costs a fixed, small number of SQL statements however many
documents, citations, priorities and family members a dossier has, and the answer
(built as plain JSON values, not through the response model) still matches it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.db import open_session
from caseforum.dossiers.schemas import DossierOut
from caseforum.models import Application, Citation, Document, DocumentOffice, Priority
from tests.conftest import demo_engine
from tests.dossier_helpers import dossier_json, token_for
from tests.sql_helpers import counted

NUMBER = "2018-123456"
MOST_STATEMENTS = 4  # dossier with family, documents with named offices, priorities, citations


def _grow(db: Any, app: Application) -> None:
    """Twelve documents (three restricted to CN only), a citation on each and two
    without one, three priorities and two more family members, as rows."""
    for i in range(12):
        visibility = ("public", "offices", "restricted", "restricted")[i % 4]
        doc = Document(application_id=app.id, code="CTNF", date=date(2019, 1, 1 + i),
                       media_type="application/pdf", size=100 + i, sha256=f"{i:064d}",
                       filename=f"doc-{i}.pdf", visibility=visibility, pages=2)
        db.add(doc)
        db.flush()
        if visibility == "restricted":
            named = ("KR", "CN") if i % 8 == 2 else ("CN",)
            for office in named:
                db.add(DocumentOffice(document_id=doc.id, office_code=office))
        db.add(Citation(application_id=app.id, document_id=doc.id, cited=f"WO 2016/1234{i:02d} A1",
                        category="X", citing_office="JP"))
    for i in range(2):
        db.add(Citation(application_id=app.id, cited=f"Smith et al., part {i}", category="A",
                        citing_office="JP"))
    for i in range(3):
        db.add(Priority(application_id=app.id, office_code="JP", number=f"2017-00{i}",
                        date=date(2017, 3, 1 + i)))
    for office, number in (("CN", "201810000001"), ("KR", "1020180000001")):
        db.add(Application(office_code=office, number=number, display_number=number,
                           filing_date=date(2018, 10, 1), publication_number=f"{office}1X",
                           publication_date=date(2019, 4, 1), title="Family member",
                           family_id=app.family_id))
    db.commit()


@pytest.fixture
def app(settings: Settings) -> Any:
    """No background consumers: every statement counted belongs to the request."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


@pytest.mark.usefixtures("steady_identity_cache")
def test_dossier_api_statements_do_not_grow_with_the_dossier(app, db) -> None:
    _check_cost_and_answer(app, db)


@pytest.mark.services
@pytest.mark.usefixtures("steady_identity_cache")
def test_dossier_api_statements_and_answer_on_postgres(postgres_url: str, tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url,
                             secret_key="p" * 32, run_consumers=False)
    engine = demo_engine(settings)
    engine.dispose()
    app = create_app(settings)
    try:
        with open_session(app.state.engine) as db:
            _check_cost_and_answer(app, db)
    finally:
        app.state.engine.dispose()


def _check_cost_and_answer(app: Any, db: Any) -> None:
    provider = token_for(db, "jp.examiner")
    reader = token_for(db, "kr.examiner", "dossiers:read")
    with TestClient(app) as client:
        made = client.post("/api/v1/dossiers", headers=provider, json=dossier_json("JP", NUMBER))
        assert made.status_code == 201, made.text
        stored = made.json()["application_number"]  # as our links carry it
        url = f"/api/v1/dossiers/JP/{stored}"
        assert client.get(url, headers=reader).status_code == 200  # token now cached
        with counted(app.state.engine) as small:
            bare = client.get(url, headers=reader)
        assert bare.status_code == 200
        assert bare.json()["documents"] == [] and len(bare.json()["family"]) == 1

        _grow(db, db.exec(select(Application).where(Application.number == stored)).one())
        with counted(app.state.engine) as large:
            full = client.get(url, headers=reader)
    assert full.status_code == 200
    assert len(large) == len(small) <= MOST_STATEMENTS, large

    body = full.json()
    # KR sees public, offices, and the restricted documents naming KR - not those for CN only
    shown = [d["filename"] for d in body["documents"]]
    assert shown == [f"doc-{i}.pdf" for i in range(12) if i % 4 != 3 and i % 8 != 6]
    assert [d["offices"] for d in body["documents"] if d["visibility"] == "restricted"] == [
        ["CN", "KR"]] * 2
    cited = {c["cited"] for c in body["citations"]}
    assert cited == {f"WO 2016/1234{i:02d} A1" for i in range(12) if f"doc-{i}.pdf" in shown} | {
        "Smith et al., part 0", "Smith et al., part 1"}
    assert [p["date"] for p in body["priorities"]] == ["2017-03-01", "2017-03-02", "2017-03-03"]
    assert [m["office"] for m in body["family"]] == ["JP", "CN", "KR"]
    # exactly the declared response model: nothing missing, nothing extra, right types
    assert DossierOut.model_validate(body).model_dump(mode="json") == body


def test_another_spelling_of_the_number_still_finds_the_dossier(app, db) -> None:
    provider = token_for(db, "jp.examiner")
    with TestClient(app) as client:
        made = client.post("/api/v1/dossiers", headers=provider, json=dossier_json("JP", NUMBER))
        assert made.status_code == 201, made.text
        stored = made.json()["application_number"]
        other = client.get("/api/v1/dossiers/jp/" + NUMBER.replace("-", ""), headers=provider)
        same = client.get(f"/api/v1/dossiers/JP/{stored}", headers=provider)
    assert other.status_code == 200, other.text
    assert other.json() == same.json() == made.json()
