"""Who sees what: office role × document visibility × user, through pages and API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from caseforum.models import Office
from tests.conftest import login
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload

JP_NUMBER = "2017-187096"


@pytest.fixture
def jp_dossier(client: TestClient, db) -> dict[str, Any]:
    """A JP dossier with one document of each visibility and a citation on each."""
    headers = token_for(db, "jp.examiner")
    made = client.post("/api/v1/dossiers", headers=headers, json=dossier_json(
        "JP", JP_NUMBER, publication_number="JP 2019-054321 A", title="Cooling fin layout"))
    assert made.status_code == 201, made.text
    docs = {}
    for visibility, offices, name in (("public", "", "public-report"),
                                      ("offices", "", "offices-opinion"),
                                      ("restricted", "KR", "secret-for-korea")):
        r = upload(client, headers, "JP", JP_NUMBER, pdf_bytes(f"text of {name}"),
                   visibility=visibility, offices=offices, filename=f"{name}.pdf")
        assert r.status_code == 201, r.text
        docs[visibility] = r.json()
        cited = client.post(f"/api/v1/dossiers/JP/{JP_NUMBER}/citations", headers=headers,
                            json={"cited": f"citation-from-{name}", "category": "X",
                                  "claims": "1", "phase": "search",
                                  "document_id": r.json()["id"]})
        assert cited.status_code == 201, cited.text
    return docs


# user -> the visibilities they may see (None: the dossier itself is hidden)
EXPECTED = {
    "jp.examiner": {"public", "offices", "restricted"},  # own office
    "kr.examiner": {"public", "offices", "restricted"},  # accessing, named
    "cn.examiner": {"public", "offices"},  # accessing, not named
    "sg.examiner": {"public", "offices"},  # accessing only
    "us.admin": None,  # providing only: does not browse others' dossiers
    "anonymous": {"public"},  # JP allows public access
}


def _client_for(app, db, user: str) -> tuple[TestClient, dict[str, str]]:
    client = TestClient(app)
    if user == "anonymous":
        return client, {}
    login(client, user)
    return client, token_for(db, user, "dossiers:read")


@pytest.mark.parametrize("user", list(EXPECTED))
def test_visibility_matrix_pages_and_api(app, db, jp_dossier, user: str) -> None:
    client, token = _client_for(app, db, user)
    expected = EXPECTED[user]
    page = client.get(f"/dossiers/JP/{JP_NUMBER}")
    api = TestClient(app).get(f"/api/v1/dossiers/JP/{JP_NUMBER}", headers=token) \
        if token else client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}")
    if expected is None:
        assert page.status_code == 404
        assert api.status_code == 404
        assert "Cooling fin layout" not in page.text
        for doc in jp_dossier.values():
            assert client.get(f"/documents/{doc['id']}").status_code == 404
        return
    assert page.status_code == 200
    assert api.status_code == 200
    listed = {d["visibility"] for d in api.json()["documents"]}
    assert listed == expected
    cited = {c["cited"] for c in api.json()["citations"]}
    names = {"public": "public-report", "offices": "offices-opinion",
             "restricted": "secret-for-korea"}
    assert cited == {f"citation-from-{names[v]}" for v in expected}
    for visibility, doc in jp_dossier.items():
        visible = visibility in expected
        # absent, not just locked: no row, no count, no URL
        assert (f"/documents/{doc['id']}\"" in page.text) is visible
        assert (f"citation-from-{names[visibility]}" in page.text) is visible
        assert (client.get(f"/documents/{doc['id']}").status_code == 200) is visible
        assert (client.get(f"/documents/{doc['id']}/download").status_code == 200) is visible
        meta = TestClient(app).get(f"/api/v1/documents/{doc['id']}", headers=token) \
            if token else client.get(f"/api/v1/documents/{doc['id']}")
        assert meta.status_code == (200 if visible else 404)


def test_anonymous_sees_nothing_when_the_office_closes_public_access(
    app, db, jp_dossier
) -> None:
    office = db.get(Office, "JP")
    office.public_access = False
    db.add(office)
    db.commit()
    anonymous = TestClient(app)
    assert anonymous.get(f"/dossiers/JP/{JP_NUMBER}").status_code == 404
    assert anonymous.get(f"/documents/{jp_dossier['public']['id']}").status_code == 404
    assert anonymous.get(f"/api/v1/dossiers/JP/{JP_NUMBER}").status_code == 404


def test_idor_another_offices_document_id_is_404_not_403(app, db, jp_dossier) -> None:
    client, token = _client_for(app, db, "cn.examiner")
    secret = jp_dossier["restricted"]["id"]
    for path in (f"/documents/{secret}", f"/documents/{secret}/download",
                 f"/documents/{secret}/print", f"/documents/{secret}/content",
                 f"/compare?a={secret}&b={jp_dossier['public']['id']}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "secret-for-korea" not in response.text
    for path in (f"/api/v1/documents/{secret}", f"/api/v1/documents/{secret}/content"):
        assert TestClient(app).get(path, headers=token).status_code == 404
    # and an id that does not exist at all answers the same
    assert client.get("/documents/999999").status_code == 404


def test_timeline_and_family_respect_visibility(app, db, jp_dossier) -> None:
    client, _ = _client_for(app, db, "cn.examiner")
    timeline = client.get(f"/dossiers/JP/{JP_NUMBER}/timeline")
    assert timeline.status_code == 200
    assert f"/documents/{jp_dossier['offices']['id']}\"" in timeline.text
    assert f"/documents/{jp_dossier['restricted']['id']}\"" not in timeline.text


def test_only_the_providing_office_provides(app, db, jp_dossier, client) -> None:
    kr = token_for(db, "kr.examiner")
    # KR may not upload to a JP dossier, nor create one in JP's name
    assert upload(client, kr, "JP", JP_NUMBER, pdf_bytes("x")).status_code == 403
    assert client.post("/api/v1/dossiers", headers=kr,
                       json=dossier_json("JP", "2018-000001")).status_code == 403
    # an accessing-only office cannot provide at all
    sg = token_for(db, "sg.examiner")
    assert client.post("/api/v1/dossiers", headers=sg,
                       json=dossier_json("SG", "10201801234X")).status_code == 403
    # a read-only token cannot write even for its own office
    read_only = token_for(db, "jp.examiner", "dossiers:read")
    assert upload(client, read_only, "JP", JP_NUMBER, pdf_bytes("x")).status_code == 403
