"""The dossier's documents: office codes kept as given, one list by date with group,
direction and a group filter, restricted offices named for readers who may know them,
language in the compare headers, comparing across the family from the timeline."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caseforum.authz import DocumentTarget, Viewer, can
from caseforum.dossiers.access import Access
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for

JP = "/dossiers/JP/2017187096"
US = "/dossiers/US/16123456"


def post_doc(client: TestClient, headers: dict[str, str], office: str, number: str,
             code: str, date: str, *, label: str = "", language: str = "en",
             visibility: str = "offices", offices: str = "",
             text: str | None = None) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/dossiers/{office}/{number}/documents", headers=headers,
        data={"code": code, "date": date, "language": language, "label": label,
              "visibility": visibility, "offices": offices},
        files={"file": (f"{code}-{date}.pdf", pdf_bytes(text or f"{code} of {date}"),
                        "application/pdf")})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def family(client: TestClient, db) -> dict[str, Any]:
    """A JP application with JPO codes (claims in Japanese, a search report filed
    after the claims but before the office action) and its US member."""
    jp = token_for(db, "jp.examiner")
    us = token_for(db, "us.admin")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Fin stack"))
    client.post("/api/v1/dossiers", headers=us, json=dossier_json(
        "US", "16/123,456", publication_number="US 2019/0094321 A1",
        priorities=[{"office": "JP", "number": "2017-187096", "date": "2017-09-28"}],
        filing_date="2018-09-27", title="Fin stack"))
    docs = {
        "clm": post_doc(client, jp, "JP", "2017187096", "CLM", "2017-09-28", language="ja",
                        text="1. A heat exchanger comprising fins."),
        "a131": post_doc(client, jp, "JP", "2017187096", "A131", "2019-01-10",
                         label="Notice of Reasons for Refusal\n(TRANSLATED)"),
        "srpt": post_doc(client, jp, "JP", "2017187096", "A971007", "2018-11-20"),
        "a53": post_doc(client, jp, "JP", "2017187096", "A53", "2019-03-01"),
        "note": post_doc(client, jp, "JP", "2017187096", "x.99", "2019-04-01",
                         label="Note to file"),
        "secret": post_doc(client, jp, "JP", "2017187096", "A131-JP", "2019-01-10",
                           visibility="restricted", offices="KR CN", language="ja"),
        "us_clm": post_doc(client, us, "US", "16123456", "CLM", "2018-09-27",
                           text="1. A heat exchanger comprising layered fins."),
        "ctnf": post_doc(client, us, "US", "16123456", "CTNF", "2019-06-01"),
    }
    return docs


def doc_order(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'<a href="/documents/(\d+)">View</a>', html)]


def test_documents_are_one_list_by_date_with_group_and_direction(as_user, family) -> None:
    client, _ = as_user("jp.examiner")
    page = client.get(JP).text
    assert doc_order(page) == [family[k]["id"] for k in
                               ("clm", "srpt", "a131", "secret", "a53", "note")]
    # the search report is where its date puts it, not after every other group
    rows = re.findall(r'<tr class="doc-row g-(\w+)"', page)
    assert rows == ["application", "search", "examination", "examination", "applicant",
                    "other"]
    assert "<h3>Search</h3>" not in page  # no more one table per group
    a131_row = page[page.index("<code>A131</code>"):]
    a131_row = a131_row[:a131_row.index("</tr>")]
    assert "Notice of Reasons for Refusal (TRANSLATED)" in a131_row  # the office's own label
    assert "Examination" in a131_row and "outgoing" in a131_row
    a53_row = page[page.index("<code>A53</code>"):]
    assert "incoming" in a53_row[:a53_row.index("</tr>")]


def test_any_office_code_is_kept_with_its_own_label(as_user, family, client, db) -> None:
    note = family["note"]
    assert (note["code"], note["label"], note["group"], note["direction"]) == (
        "X.99", "Note to file", "other", None)
    twin = family["secret"]
    assert twin["label"] == "Notice of reasons for refusal (original language)"
    api = client.get("/api/v1/dossiers/JP/2017187096",
                     headers=token_for(db, "kr.examiner", "dossiers:read")).json()
    by_code = {d["code"]: d for d in api["documents"]}
    assert by_code["A131"]["label"] == "Notice of Reasons for Refusal (TRANSLATED)"
    assert (by_code["A971007"]["group"], by_code["A971007"]["direction"]) == (
        "search", "internal")
    page = as_user("kr.examiner")[0].get(JP).text
    note_row = page[page.index("<code>X.99</code>"):]
    assert "Note to file" in note_row[:note_row.index("</tr>")]


def test_filter_by_group_renders_whole_and_as_a_fragment(as_user, family) -> None:
    client, _ = as_user("kr.examiner")
    only_search = client.get(JP, params={"group": "search"})
    assert only_search.status_code == 200
    assert doc_order(only_search.text) == [family["srpt"]["id"]]
    assert "<html" in only_search.text and "Bibliographic data" in only_search.text
    assert 'value="search" checked' in only_search.text
    two = client.get(JP, params={"group": ["search", "applicant"]})
    assert doc_order(two.text) == [family["srpt"]["id"], family["a53"]["id"]]
    fragment = client.get(JP, params={"group": "examination"},
                          headers={"HX-Request": "true", "HX-Target": "documents-list"})
    assert "<html" not in fragment.text and "Bibliographic data" not in fragment.text
    assert fragment.text.lstrip().startswith('<div id="documents-list">')
    assert doc_order(fragment.text) == [family["a131"]["id"], family["secret"]["id"]]
    empty = client.get(JP, params={"group": "grant"})
    assert "No grant documents you may see" in empty.text
    bad = client.get(JP, params={"group": "misc"})
    assert bad.status_code == 422
    assert "'misc' is not a document group" in html.unescape(bad.text)


@pytest.mark.parametrize(("user", "shown"), [
    ("jp.examiner", "restricted: CN KR"),  # the providing office
    ("kr.examiner", "restricted: CN KR"),  # a named office sees who else may
    ("cn.examiner", "restricted: CN KR"),
])
def test_restricted_documents_name_their_offices_to_readers_who_may_know(
        as_user, family, db, client, user: str, shown: str) -> None:
    page = as_user(user)[0].get(JP).text
    assert shown in page
    doc = as_user(user)[0].get(f"/documents/{family['secret']['id']}").text
    assert shown in doc
    api = client.get(f"/api/v1/documents/{family['secret']['id']}",
                     headers=token_for(db, user, "dossiers:read")).json()
    assert api["offices"] == ["CN", "KR"]


def test_readers_outside_the_named_offices_never_learn_them(as_user, family, db,
                                                             client) -> None:
    page = as_user("sg.examiner")[0].get(JP).text
    assert family["secret"]["id"] not in doc_order(page)
    assert "restricted" not in page.split('id="documents"')[1].split("</section>")[0]
    api = client.get("/api/v1/dossiers/JP/2017187096",
                     headers=token_for(db, "sg.examiner", "dossiers:read")).json()
    assert all(d["offices"] == [] for d in api["documents"])
    assert "KR" not in str(api["documents"])


@pytest.mark.parametrize(("role", "office", "named"), [
    ("examiner", "JP", ["CN", "KR"]),  # providing office
    ("examiner", "KR", ["CN", "KR"]),  # named
    ("platform_admin", "IB", ["CN", "KR"]),
    ("examiner", "SG", []),  # neither: just "restricted"
    ("office_admin", "SG", []),
    (None, None, []),  # anonymous
])
def test_the_named_offices_rule(db, role, office, named) -> None:
    viewer = Viewer(user_id=1 if role else None, office_code=office, role=role,
                    accessing=True) if role else Viewer()
    target = DocumentTarget("JP", True, "restricted", frozenset({"KR", "CN"}))
    assert Access(db, viewer).named_offices(target) == named
    public = DocumentTarget("JP", True, "offices", frozenset())
    assert not can(viewer, "document.named_offices", public)


def test_compare_headers_show_each_documents_language(as_user, family) -> None:
    client, _ = as_user("kr.examiner")
    page = client.get("/compare", params={"doc": [family["clm"]["id"], family["us_clm"]["id"]]})
    assert page.status_code == 200
    heads = page.text.split('class="compare-heads"')[1].split("</div>\n</div>")[0]
    assert "Japanese (ja)" in heads and "English (en)" in heads
    assert "different languages (Japanese and English)" in page.text
    assert 'lang="ja"' in page.text and 'lang="en"' in page.text


def test_timeline_compares_documents_of_two_family_members(as_user, family) -> None:
    client, _ = as_user("kr.examiner")
    timeline = client.get(f"{US}/timeline").text
    form = timeline.split('<form method="get" action="/compare" id="timeline"')[1]
    form = form.split("</form>")[0]
    ticks = [int(v) for v in re.findall(r'name="doc" value="(\d+)"', form)]
    assert family["clm"]["id"] in ticks and family["us_clm"]["id"] in ticks
    assert family["secret"]["id"] in ticks  # KR is named on it
    compared = client.get("/compare", params={"doc": [family["a131"]["id"],
                                                      family["ctnf"]["id"]]})
    assert compared.status_code == 200
    assert '<span class="office-badge">JP</span>' in compared.text
    assert '<span class="office-badge">US</span>' in compared.text


def test_cross_family_compare_keeps_the_access_rules(as_user, family) -> None:
    client, _ = as_user("sg.examiner")
    timeline = client.get(f"{US}/timeline").text
    assert f'value="{family["secret"]["id"]}"' not in timeline
    refused = client.get("/compare", params={"doc": [family["secret"]["id"],
                                                     family["ctnf"]["id"]]})
    assert refused.status_code == 404
    assert "Japanese" not in refused.text


def test_upload_form_takes_any_code_and_a_label(as_user, family) -> None:
    client, token = as_user("jp.examiner")
    page = client.get(JP).text
    assert 'list="doc-codes"' in page and '<option value="A131">' in page
    made = client.post(f"{JP}/documents", data={
        "csrf_token": token, "code": "a971015", "date": "2019-05-01", "language": "ja",
        "visibility": "offices", "label": ""},
        files={"file": ("record.pdf", pdf_bytes("record"), "application/pdf")},
        follow_redirects=False)
    assert made.status_code == 303, made.text
    page = client.get(JP).text
    row = page[page.index("<code>A971015</code>"):]
    assert "Record of communication with the applicant" in row[:row.index("</tr>")]
    bad = client.post(f"{JP}/documents", data={
        "csrf_token": token, "code": "A 1", "date": "2019-05-01"},
        files={"file": ("x.pdf", pdf_bytes("x"), "application/pdf")})
    assert bad.status_code == 422
    assert "must be 1 to 20 characters" in bad.text
