"""The One Portal Dossier link end to end, over real HTTP against the reference server:
the recorded families and documents arrive as the offices wrote them, are stored on
first view, and a slow, broken or absent service is never a 500."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from caseforum_opd_link import wire
from caseforum_opd_link.client import OpdMalformed, OpdUnavailable
from caseforum_opd_link.plugin import OpdSource
from fastapi.testclient import TestClient

from caseforum.app import create_app
from caseforum.config import Settings
from plugins.opd_link.tests.conftest import FIXTURES, Reference
from tests.conftest import login

ISSUE_PDF = FIXTURES / "doccontent_US_201816123456.A_KJM2MWIEDFLYX10_1.pdf"


def _recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def _source(reference: Reference, **config: Any) -> OpdSource:
    return OpdSource({"base_url": reference.url, "timeout_seconds": 1, "retries": 1,
                      "backoff_seconds": 0.01, **config})


# The client and the wire format -----------------------------------------------------


@pytest.mark.parametrize("ref", [
    "application/US/16123456", "application/US/16740760", "application/US/17193105",
    "publication/EP/1000000"])
def test_every_recorded_family_reads(reference: Reference, ref: str) -> None:
    dossier = _source(reference).fetch_dossier(ref)
    assert dossier is not None and dossier.asked is not None
    recorded = _recorded("family_" + ref.replace("/", "_") + ".json")
    assert len(dossier.members) == len(recorded["list"])
    for member in dossier.members:
        assert member.filing_date is not None and member.office and member.number


def test_the_us_16123456_family(reference: Reference) -> None:
    source = _source(reference)
    [match] = source.lookup("US 16/123,456")
    assert (match.office, match.application_number, match.matched_as) == \
        ("US", "16123456", "application")
    dossier = source.fetch_dossier(match.ref)
    assert dossier is not None
    members = {(m.office, m.number): m for m in dossier.members}
    assert set(members) == {("JP", "2017187096"), ("US", "16123456"), ("US", "17130468")}
    us = members["US", "16123456"]
    assert [(p.number, p.kind) for p in us.publications] == [("20190095759", "A1"),
                                                             ("10902286", "B2")]
    assert us.filing_date == date(2018, 9, 6) and us.kind_code == "A"
    assert us.applicants == ("KANADA, Shoji",)  # the trailing space of the record is gone
    recorded = _recorded("doclist_US_16123456_A.json")["docs"]
    assert {(d.code, d.label) for d in us.documents or ()} == \
        {(r["docCode"], r["docDesc"]) for r in recorded}
    assert {"CTNF", "892", "DRW.NONBW", "LET."} <= {d.code for d in us.documents or ()}
    assert {(d.code, d.shareable) for d in us.documents or ()} == \
        {(r["docCode"], r["shareable"]) for r in recorded}
    assert all(d.visibility == "public" for d in us.documents or ())
    jp = members["JP", "2017187096"].documents or ()
    refusal = next(d for d in jp if d.code == "A131")
    original = next(d for d in jp if d.code == "A131-JP")
    assert refusal.is_translation and refusal.label == "Notice of Reasons for Refusal (TRANSLATED)"
    assert original.language == "ja" and refusal.original_ref == original.ref
    assert members["US", "17130468"].documents is None  # no list recorded: not "no documents"


def test_a_publication_number_finds_its_family(reference: Reference) -> None:
    [match] = _source(reference).lookup("EP 1 000 000 A1")
    assert (match.office, match.application_number, match.matched_as) == \
        ("EP", "99203729", "publication")


def test_dates_nulls_and_line_breaks() -> None:
    assert wire.when(1536246505000) == date(2018, 9, 6)
    assert wire.when(None, "02/29/2020") == date(2020, 2, 29)
    assert wire.when("x", "13/45/2020") is None
    listing = {"docNumber": "1.A", "country": "US", "docs": [
        {"docCode": None, "docDesc": "Odd\n  letter ", "docId": "D1", "legalDate": None,
         "legalDateStr": "01/02/2021", "docFormat": None, "numberOfPages": None,
         "shareable": None},
        {"docCode": "CTNF", "docId": None}, "not a dict"], "officeActionDocs": None}
    [doc] = wire.documents(listing, "US", None) or ()
    assert (doc.code, doc.label, doc.date, doc.pages, doc.shareable) == \
        ("UNKNOWN", "Odd letter", date(2021, 1, 2), None, None)
    assert wire.documents({"docs": None}, "US", None) is None


def test_recorded_pdf_bytes_arrive_unchanged(reference: Reference) -> None:
    ref = "US/201816123456.A/KJM2MWIEDFLYX10/1/PDF"
    assert b"".join(_source(reference).stream_document(ref)) == ISSUE_PDF.read_bytes()


def test_unknown_numbers_are_no_match(reference: Reference) -> None:
    assert _source(reference).lookup("US 99/999,999") == []
    assert _source(reference).fetch_dossier("application/US/99999999") is None


def test_retries_are_bounded_and_malformed_answers_not_retried(reference: Reference) -> None:
    source = _source(reference, retries=2)
    before = reference.faults(error_rate=1)["requests"]
    with pytest.raises(OpdUnavailable, match="HTTP 503"):
        source.lookup("US 16/123,456")
    assert reference.faults(error_rate=0, malformed=True)["requests"] - before == 3
    before = reference.requests
    with pytest.raises(OpdMalformed, match="not valid JSON"):
        source.lookup("US 16/123,456")
    with pytest.raises(OpdMalformed, match="not a PDF"):
        list(source.stream_document("US/201816123456.A/KJM2MWIEDFLYX10/1/PDF"))
    assert reference.requests - before == 2


# In the application ---------------------------------------------------------------


@pytest.fixture
def opd_client(settings: Settings, reference: Reference) -> Iterator[TestClient]:
    opd = {"base_url": reference.url, "timeout_seconds": 0.5, "retries": 1,
           "backoff_seconds": 0.01}
    app = create_app(settings.model_copy(update={"plugins": {"opd_link": opd}}))
    with TestClient(app) as client:
        login(client, "kr.examiner")
        yield client


def _doc_id(body: dict[str, Any], code: str) -> int:
    return int(next(d["id"] for d in body["documents"] if d["code"] == code))


def test_an_examiner_opens_a_family_held_only_by_the_opd(opd_client: TestClient,
                                                        reference: Reference) -> None:
    page = opd_client.get("/dossiers", params={"q": "US 16/123,456"})
    assert page.status_code == 200 and page.url.path == "/dossiers/US/16123456"
    assert "From One Portal Dossier, last refreshed" in page.text
    for shown in ("2017-187096", "17/130,468", "US 2019/0095759 A1"):
        assert shown in page.text
    remote_calls = reference.requests
    assert opd_client.get("/dossiers/US/16123456").status_code == 200
    body = opd_client.get("/api/v1/dossiers/US/16123456").json()
    assert reference.requests == remote_calls  # the second view costs no remote call
    assert body["source"] == "opd_link" and body["stale_since"] is None
    assert body["publications"] == [
        {"number": "20190095759", "kind": "A1", "date": "2019-03-28"},
        {"number": "10902286", "kind": "B2", "date": "2021-01-26"}]
    assert {m["office"] + m["application_number"] for m in body["family"]} == \
        {"JP2017187096", "US16123456", "US17130468"}
    recorded = _recorded("doclist_US_16123456_A.json")["docs"]
    assert {(d["code"], d["label"]) for d in body["documents"]} == \
        {(r["docCode"], r["docDesc"]) for r in recorded}
    assert all(d["visibility"] == "public" for d in body["documents"])

    doc_id = _doc_id(body, "ISSUE.NTF")
    first = opd_client.get(f"/api/v1/documents/{doc_id}/content")
    assert first.status_code == 200 and first.content == ISSUE_PDF.read_bytes()
    fetched = reference.requests
    again = opd_client.get(f"/documents/{doc_id}/content")
    assert again.content == ISSUE_PDF.read_bytes() and reference.requests == fetched
    meta = opd_client.get(f"/api/v1/documents/{doc_id}").json()
    assert meta["sha256"] and meta["size"] == len(ISSUE_PDF.read_bytes())

    jp = opd_client.get("/api/v1/dossiers/JP/2017187096").json()
    codes = {d["code"]: d for d in jp["documents"]}
    assert codes["A131"]["label"] == "Notice of Reasons for Refusal (TRANSLATED)"
    assert codes["A131-JP"]["language"] == "ja" and codes["A131"]["is_translation"]
    timeline = opd_client.get("/dossiers/US/16123456/timeline")
    assert "A131" in timeline.text and "CTNF" in timeline.text


def test_jp_originals_pair_with_their_translations(opd_client: TestClient) -> None:
    """Every ``-JP`` original of the recorded JP list pairs with its own translation:
    twelve pairs, five of them sharing code A63 and one date, told apart by docId."""
    assert opd_client.get("/dossiers", params={"q": "US 16/123,456"}).status_code == 200
    docs = {d["id"]: d for d in
            opd_client.get("/api/v1/dossiers/JP/2017187096").json()["documents"]}
    paired = {(docs[d["translation_of"]]["label"], d["label"])
              for d in docs.values() if d["translation_of"] is not None}
    recorded = _recorded("doclist_JP_2017187096_A.json")["docs"]
    assert paired == {(r["docDesc"].replace("(TRANSLATED)", "(ORIGINAL)"), r["docDesc"])
                      for r in recorded if not r["docId"].endswith("_JP")}
    assert len(paired) == 12
    for doc in docs.values():
        if doc["translation_of"] is not None:
            original = docs[doc["translation_of"]]
            assert (original["language"], doc["language"]) == ("ja", "en")
            assert original["code"] == doc["code"] + "-JP" and original["date"] == doc["date"]
            assert original["translations"] == [doc["id"]]
    refusal = next(d for d in docs.values() if d["code"] == "A131")
    page = opd_client.get(f"/documents/{refusal['id']}").text
    assert "pair-cols" in page and f"/documents/{refusal['translation_of']}/content" in page


def test_a_twin_whose_code_or_date_disagrees_pairs_nothing() -> None:
    def listing(twin_code: str, twin_date: str) -> dict[str, Any]:
        return {"docNumber": "2017187096.A", "country": "JP", "docs": [
            {"docId": "Claims_1", "docCode": "A63", "legalDateStr": "09/27/2017"},
            {"docId": "Claims_1_JP", "docCode": twin_code, "legalDateStr": twin_date}]}

    def translation(answer: dict[str, Any]) -> Any:
        return next(d for d in wire.documents(answer, "JP", None) or () if d.code == "A63")

    assert translation(listing("A63-JP", "09/27/2017")).original_ref is not None
    for code, day in (("A131-JP", "09/27/2017"), ("A63-JP", "09/28/2017")):
        unpaired = translation(listing(code, day))
        assert unpaired.original_ref is None and not unpaired.is_translation


def test_lookup_api_answers_for_local_and_remote_numbers(opd_client: TestClient) -> None:
    answer = opd_client.get("/api/v1/lookup", params={"number": "EP 1000000"}).json()
    assert answer["unavailable"] == [] and len(answer["matches"]) == 1
    assert {k: v for k, v in answer["matches"][0].items() if k != "family_id"} == {
        "office": "EP", "application_number": "99203729", "display_number": "99203729",
        "matched_as": "publication", "source": "opd_link",
        "url": "/api/v1/dossiers/EP/99203729"}
    local = opd_client.get("/api/v1/lookup", params={"number": "JP 2019-041872"}).json()
    # the dossier itself first, then the family members that claim it as priority
    assert [(m["source"], m["matched_as"]) for m in local["matches"]][0] == \
        ("hosted", "application")
    assert {m["matched_as"] for m in local["matches"][1:]} <= {"priority", "pct"}
    assert opd_client.get(answer["matches"][0]["url"]).json()["source"] == "opd_link"
    missing = opd_client.get("/api/v1/lookup", params={"number": "US 99/999,999"})
    assert missing.status_code == 200 and missing.json()["matches"] == []


def test_a_number_no_source_knows_is_a_clear_404(opd_client: TestClient) -> None:
    answer = opd_client.get("/api/v1/dossiers/US/99999999")
    assert answer.status_code == 404
    assert "not held here and no dossier source knows it" in answer.json()["detail"]
    page = opd_client.get("/dossiers", params={"q": "US 99/999,999"})
    assert page.status_code == 404 and "No dossier matches" in page.text


FAULTS = [{"down": True}, {"error_rate": 1}, {"malformed": True}, {"delay": 1.2}]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: next(iter(f)))
def test_a_fault_is_never_a_500_and_cached_dossiers_turn_stale(
        opd_client: TestClient, reference: Reference, fault: dict[str, Any]) -> None:
    assert opd_client.get("/api/v1/dossiers/US/16123456").status_code == 200
    body = opd_client.get("/api/v1/dossiers/US/16123456").json()
    doc_id = _doc_id(body, "ISSUE.NTF")
    reference.faults(**fault)

    uncached = opd_client.get("/api/v1/dossiers/US/16740760")
    assert uncached.status_code == 503
    assert "could not be fetched" in uncached.json()["detail"]
    box = opd_client.get("/dossiers", params={"q": "US 17/193,105"})
    assert box.status_code == 503 and "One Portal Dossier" in box.text

    stale = opd_client.get("/api/v1/dossiers/US/16123456", params={"refresh": 1})
    assert stale.status_code == 200 and stale.json()["stale_since"] is not None
    page = opd_client.get("/dossiers/US/16123456?refresh=1")
    assert page.status_code == 200
    assert re.search(r"From One Portal Dossier, last refreshed .*The source has not "
                     r"answered since", page.text, re.DOTALL)
    content = opd_client.get(f"/api/v1/documents/{doc_id}/content")
    assert content.status_code == 503 and content.json()["code"] == "unavailable"

    reference.faults(down=False, error_rate=0, malformed=False, delay=0)
