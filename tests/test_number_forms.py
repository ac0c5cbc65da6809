"""Every form of a number, everywhere: the number box, /api/v1/lookup and posts.

The demo's first family (JP 2019-041872, published JP 2020-149862 A, PCT/JP2020/009517,
national phases in CN, KR, US, AU and GB claiming the JP priority) and one uploaded
JP dossier granted as JP 6768620 B2 answer the forms examiners copy from documents.
"""

from __future__ import annotations

import re

import pytest

from tests.dossier_helpers import dossier_json, token_for
from tests.forum_helpers import make_category, start_thread

FORMS = [  # (typed, dossier it names, matched_as)
    ("特願2019-041872", "JP/2019041872", "application"),
    ("特願２０１９－０４１８７２", "JP/2019041872", "application"),
    ("JP 2019-041872", "JP/2019041872", "application"),
    ("特開2020-149862", "JP/2019041872", "publication"),
    ("JP 2020149862 A", "JP/2019041872", "publication"),
    ("特許第6768620号", "JP/2017187096", "publication"),
    ("JP 2017187096", "JP/2017187096", "application"),
    ("JP2017187096", "JP/2017187096", "application"),
    ("申请号 202080019375.4", "CN/202080019375", "application"),
    ("CN202080019375.4", "CN/202080019375", "application"),
    ("CN 2020 8001 9375.4", "CN/202080019375", "application"),
    ("출원번호 10-2021-7028846", "KR/1020217028846", "application"),
    ("10-2021-7028846", "KR/1020217028846", "application"),
    ("KR1020217028846", "KR/1020217028846", "application"),
    ("PCT/JP2020/009517", "IB/JP2020009517", "application"),
    ("WO2020JP009517", "IB/JP2020009517", "application"),
    ("WO 2020/179934 A1", "IB/JP2020009517", "publication"),
]


@pytest.fixture
def granted(client, db) -> None:
    jp = token_for(db, "jp.examiner")
    answer = client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 6768620 B2", filing_date="2017-09-28",
        title="Granted fin arrangement"))
    assert answer.status_code in (200, 201), answer.text


def _lookup(client, text: str) -> list[dict]:
    answer = client.get("/api/v1/lookup", params={"number": text})
    assert answer.status_code == 200, answer.text
    return answer.json()["matches"]


@pytest.mark.usefixtures("granted")
def test_lookup_api_and_number_box_read_every_form(as_user) -> None:
    cn, _ = as_user("cn.examiner")  # one app for all forms: the suite's time matters
    for typed, key, matched_as in FORMS:
        first = _lookup(cn, typed)[0]
        assert f"{first['office']}/{first['application_number']}" == key, typed
        assert first["matched_as"] == matched_as, typed
        assert first["url"] == f"/api/v1/dossiers/{key}"  # the API's own answer for it
        assert first["source"] == "hosted"
        page = cn.get("/dossiers", params={"q": typed}, follow_redirects=False)
        if page.status_code == 303:
            assert page.headers["location"] == f"/dossiers/{key}", typed
        else:  # several dossiers answer (a family): the one typed is listed
            assert page.status_code == 200 and f"/dossiers/{key}" in page.text, typed


def test_national_phases_are_found_by_their_pct_number(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    matches = _lookup(cn, "PCT/JP2020/009517")
    assert {m["office"] for m in matches if m["matched_as"] == "pct"} >= {"CN", "KR"}


def test_a_priority_number_finds_the_family_grouped(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    matches = _lookup(cn, "特願2019-041872")
    assert matches[0]["matched_as"] == "application"
    claiming = {m["office"] for m in matches if m["matched_as"] == "priority"}
    assert {"CN", "KR", "AU"} <= claiming  # the national phases that claim it
    families = [m["family_id"] for m in matches]
    assert families == sorted(families, key=families.index)  # one family, together


def test_lookup_explains_what_is_not_a_number(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    answer = cn.get("/api/v1/lookup", params={"number": "XY hello"})
    assert answer.status_code == 422
    assert "office code" in answer.json()["detail"]
    assert _lookup(cn, "JP 2099-123456") == []  # a number, but no dossier


def test_lookup_hides_what_the_caller_may_not_see(as_user) -> None:
    us, _ = as_user("us.admin")  # providing only: other offices' dossiers are hidden
    assert {m["office"] for m in _lookup(us, "特願2019-041872")} == {"US"}


LINK = re.compile(r'<a class="ref" href="/dossiers/([A-Z]{2}/[A-Z0-9]+)">')


@pytest.mark.usefixtures("granted")
def test_a_number_in_a_post_becomes_a_card_exactly_when_the_box_finds_it(as_user,
                                                                         db) -> None:
    typed = [t for t, _, _ in FORMS] + ["JP 2099-123456", "10-2099-7000001"]
    author, csrf = as_user("jp.examiner")
    body = "\n\n".join(f"Form {i}: {t} here." for i, t in enumerate(typed))
    thread = start_thread(author, csrf, make_category(db), "Number forms", body)
    cn, _ = as_user("cn.examiner")
    page = cn.get(f"/threads/{thread}").text
    paragraphs = re.findall(r"<p>Form (\d+): (.*?) here\.</p>", page)
    assert len(paragraphs) == len(typed)
    for index, html in paragraphs:
        text = typed[int(index)]
        found = [m for m in _lookup(cn, text)  # the dossier the number names
                 if m["matched_as"] in ("application", "publication")]
        link = LINK.search(html)
        if found:
            assert link is not None, (text, html)
            assert link.group(1) == f"{found[0]['office']}/{found[0]['application_number']}"
        else:
            assert link is None, (text, html)
    assert 'class="dossier-card"' in page
