"""Examiner pages: finding, timeline, comparison, print, statistics, the web form."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from caseforum.models import AccessLog
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload

CLAIMS_V1 = ["1. A heat exchanger comprising a plurality of fins.",
             "2. The heat exchanger of claim 1, wherein the fins are aluminium.",
             "3. The heat exchanger of claim 1, wherein the fins are stacked."]
CLAIMS_V2 = ["1. A heat exchanger comprising a plurality of layered fins.",
             "2. The heat exchanger of claim 1, wherein the fins are copper.",
             "3. The heat exchanger of claim 1, wherein the fins are stacked."]


@pytest.fixture
def family(client, db) -> dict:
    """A JP application with claims as filed and as amended, and a US member."""
    jp = token_for(db, "jp.examiner")
    us = token_for(db, "us.admin")
    prio = [{"office": "JP", "number": "2017-187096", "date": "2017-09-28"}]
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack"))
    client.post("/api/v1/dossiers", headers=us, json=dossier_json(
        "US", "16/123,456", publication_number="US 2019/0094321 A1", priorities=prio,
        filing_date="2018-09-27", title="Fin stack"))
    clm = upload(client, jp, "JP", "2017187096", pdf_bytes(*CLAIMS_V1), code="CLM",
                 date="2017-09-28").json()
    amnd = upload(client, jp, "JP", "2017187096", pdf_bytes(*CLAIMS_V2), code="AMND",
                  date="2019-02-01").json()
    ctnf = upload(client, us, "US", "16123456", pdf_bytes("Non-final rejection"), code="CTNF",
                  date="2019-06-01").json()
    return {"clm": clm, "amnd": amnd, "ctnf": ctnf}


@pytest.mark.parametrize("typed", ["US 16/123,456", "us16123456", "16/123,456",
                                   "US 2019/0094321 A1", "US20190094321A1"])
def test_number_box_finds_the_dossier_from_loose_forms(as_user, family, typed) -> None:
    client, _ = as_user("kr.examiner")
    response = client.get("/dossiers", params={"q": typed}, follow_redirects=False)
    if typed == "16/123,456":  # a bare number needs an office, or matches any office
        response = client.get("/dossiers", params={"q": typed, "office": "US"},
                              follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dossiers/US/16123456"


def test_malformed_number_gets_a_hint_not_an_error_page(as_user, family) -> None:
    client, _ = as_user("kr.examiner")
    response = client.get("/dossiers", params={"q": "US 16/12"})
    assert response.status_code == 404
    assert "too short" in response.text or "expected" in response.text


def test_dossier_page_shows_family_citations_and_documents(as_user, family, client, db) -> None:
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers/JP/2017187096/citations", headers=jp, json={
        "cited": "WO 2016/123456 A1", "category": "X,Y", "claims": "1-2", "phase": "search"})
    examiner, _ = as_user("kr.examiner")
    page = examiner.get("/dossiers/JP/2017187096").text
    assert "/dossiers/US/16123456" in page  # family member linked
    assert "patentscope.wipo.int" in page  # WO citation links out
    assert 'class="cat cat-X"' in page and 'class="cat cat-Y"' in page
    assert "<code>CLM</code>" in page and "<code>AMND</code>" in page


def test_timeline_orders_documents_across_offices_and_filters(as_user, family) -> None:
    client, _ = as_user("kr.examiner")
    page = client.get("/dossiers/US/16123456/timeline").text
    order = [m.group(1) for m in re.finditer(r'href="/documents/(\d+)"', page)]
    assert order == [str(family[k]["id"]) for k in ("clm", "amnd", "ctnf")]
    only_us = client.get("/dossiers/US/16123456/timeline", params={"offices": "US"}).text
    assert f'/documents/{family["ctnf"]["id"]}"' in only_us
    assert f'/documents/{family["clm"]["id"]}"' not in only_us
    only_amnd = client.get("/dossiers/US/16123456/timeline", params={"codes": "AMND"},
                           headers={"HX-Request": "true"})
    assert "<html" not in only_amnd.text  # the htmx filter gets just the list
    assert f'/documents/{family["amnd"]["id"]}"' in only_amnd.text
    assert f'/documents/{family["ctnf"]["id"]}"' not in only_amnd.text


def test_compare_highlights_the_amendments(as_user, family, db) -> None:
    client, _ = as_user("kr.examiner")
    page = client.get("/compare", params={"doc": [family["clm"]["id"], family["amnd"]["id"]]})
    assert page.status_code == 200
    assert "<ins>layered </ins>" in page.text or "<ins>layered" in page.text
    assert "<del>aluminium.</del>" in page.text
    assert "<ins>copper.</ins>" in page.text
    logged = db.exec(select(AccessLog).where(AccessLog.action == "compare")).all()
    assert {entry.document_id for entry in logged} == {family["clm"]["id"],
                                                       family["amnd"]["id"]}
    one = client.get("/compare", params={"doc": [family["clm"]["id"]]})
    assert one.status_code == 422
    assert "exactly two" in one.text


def test_view_download_print_are_logged(as_user, family, db) -> None:
    client, _ = as_user("kr.examiner")
    doc_id = family["ctnf"]["id"]
    assert client.get(f"/documents/{doc_id}").status_code == 200
    download = client.get(f"/documents/{doc_id}/download")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.content.startswith(b"%PDF")
    printed = client.get(f"/documents/{doc_id}/print")
    assert "Non-final rejection" in printed.text
    assert "/static/js/print.js" in printed.text
    inline = client.get(f"/documents/{doc_id}/content")
    assert inline.headers["x-frame-options"] == "SAMEORIGIN"
    actions = [a.action for a in db.exec(select(AccessLog).order_by(AccessLog.id))]
    assert actions == ["view", "download", "print"]
    entry = db.exec(select(AccessLog)).first()
    assert (entry.office_code, entry.providing_office) == ("KR", "US")


def test_statistics_for_office_admin_and_platform_admin(as_user, family) -> None:
    examiner, _ = as_user("kr.examiner")
    examiner.get(f"/documents/{family['clm']['id']}")
    examiner.get(f"/documents/{family['ctnf']['id']}/download")
    jp_admin, _ = as_user("jp.admin")
    page = jp_admin.get("/stats")
    assert page.status_code == 200
    assert "<svg" in page.text and "by providing office" in page.text
    csv_text = jp_admin.get("/stats.csv").text
    # JP's admin sees accesses to JP documents (1), not to US ones
    assert "providing,JP," in csv_text
    assert "providing,US," not in csv_text
    admin, _ = as_user("admin")
    all_csv = admin.get("/stats.csv").text
    assert "providing,US," in all_csv and "accessing,KR," in all_csv
    assert examiner.get("/stats").status_code == 403
    assert jp_admin.get("/stats", params={"months": 0}).status_code == 422


def test_web_form_creates_a_dossier_and_refuses_unpublished(as_user) -> None:
    client, token = as_user("jp.examiner")
    form = {"csrf_token": token, "application_number": "2018-123456",
            "filing_date": "2018-06-01", "title": "Lens holder", "applicants": "Acme KK"}
    refused = client.post("/dossiers-new", data=form)
    assert refused.status_code == 422
    assert "unpublished application" in refused.text
    assert 'value="Lens holder"' in refused.text  # nothing typed is lost
    made = client.post("/dossiers-new", data={**form, "publication_number": "JP 2019-234567 A",
                                               "publication_date": "2019-12-01",
                                               "priorities": "JP 2017-100001 2017-06-01"},
                       follow_redirects=False)
    assert made.status_code == 303
    assert made.headers["location"] == "/dossiers/JP/2018123456"
    page = client.get("/dossiers/JP/2018123456").text
    assert "Lens holder" in page and "2017-100001" in page


def test_examiner_of_accessing_only_office_sees_no_upload_form(as_user, family) -> None:
    client, _ = as_user("sg.examiner")
    page = client.get("/dossiers/US/16123456").text
    assert "Upload a document" not in page
    assert client.get("/dossiers-new").status_code == 403
