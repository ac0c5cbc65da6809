"""Dossier cards are rendered for each viewer: the same post, different cards."""

from __future__ import annotations

import pytest

from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import make_category, start_thread


@pytest.fixture
def jp_case(client, db) -> dict:
    jp = token_for(db, "jp.examiner")
    client.post("/api/v1/dossiers", headers=jp, json=dossier_json(
        "JP", "2017-187096", publication_number="JP 2019-054321 A", filing_date="2017-09-28",
        title="Secretive fin arrangement"))
    srpt = upload(client, jp, "JP", "2017187096", pdf_bytes("report"), code="SRPT",
                  date="2018-05-01", visibility="offices").json()
    exrp = upload(client, jp, "JP", "2017187096", pdf_bytes("notes"), code="EXRP",
                  date="2019-01-15", visibility="restricted", offices="KR").json()
    return {"srpt": srpt["id"], "exrp": exrp["id"]}


def test_same_post_three_offices_three_renderings(as_user, db, jp_case) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Fins",
                          "Compare JP2017-187096 with what you have.")
    kr, _ = as_user("kr.examiner")  # accessing, named on the restricted document
    cn, _ = as_user("cn.examiner")  # accessing, not named
    us, _ = as_user("us.admin")  # providing only: may not see JP dossiers
    kr_page = kr.get(f"/threads/{thread}").text
    cn_page = cn.get(f"/threads/{thread}").text
    us_page = us.get(f"/threads/{thread}").text
    for page in (kr_page, cn_page):
        assert 'class="dossier-card"' in page
        assert "Secretive fin arrangement" in page
        assert '<a class="ref" href="/dossiers/JP/2017187096">' in page
        assert "<code>SRPT</code>" in page
    assert "<code>EXRP</code>" in kr_page  # the named office sees the restricted document
    assert "<code>EXRP</code>" not in cn_page
    # the unauthorised viewer: plain text, no card, no title, no document names
    assert "JP2017-187096" in us_page
    assert "dossier-card" not in us_page
    assert "Secretive fin arrangement" not in us_page
    assert "SRPT" not in us_page and "EXRP" not in us_page
    assert "/dossiers/JP/" not in us_page


def test_cards_show_the_dossier_as_it_is_now(as_user, db, client, jp_case) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Later", "See JP 2017-187096")
    kr, _ = as_user("kr.examiner")
    assert "<code>CTNF</code>" not in kr.get(f"/threads/{thread}").text
    upload(client, token_for(db, "jp.examiner"), "JP", "2017187096", pdf_bytes("action"),
           code="CTNF", date="2020-02-02")
    assert "<code>CTNF</code>" in kr.get(f"/threads/{thread}").text


def test_unknown_number_stays_plain_text(as_user, db) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Nothing", "What about US 16/999,999?")
    page = author.get(f"/threads/{thread}").text
    assert "US 16/999,999" in page and "dossier-card" not in page


def test_numbers_in_code_and_links_are_not_cards(as_user, db, jp_case) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    thread = start_thread(author, csrf, cat, "Code", "`JP2017-187096` stays code")
    assert "dossier-card" not in author.get(f"/threads/{thread}").text


def test_preview_renders_cards_for_the_author(as_user, jp_case) -> None:
    kr, csrf = as_user("kr.examiner")
    preview = kr.post("/preview", data={"csrf_token": csrf, "body": "JP2017-187096 **x**"},
                      headers={"HX-Request": "true"})
    assert "dossier-card" in preview.text and "<strong>x</strong>" in preview.text


def test_dossier_page_lists_the_discussions_that_mention_it(as_user, db, jp_case) -> None:
    open_cat = make_category(db)
    closed = make_category(db, "JP only", ["JP"])
    author, csrf = as_user("jp.examiner")
    start_thread(author, csrf, open_cat, "Open talk", "About JP2017-187096")
    start_thread(author, csrf, closed, "Closed talk", "Also JP 2017-187096")
    start_thread(author, csrf, open_cat, "By publication", "See JP 2019-054321 A")
    kr, _ = as_user("kr.examiner")
    page = kr.get("/dossiers/JP/2017187096").text
    assert page.count('id="discussions"') == 1
    assert "<title>JP 2017-187096 · CaseForum</title>" in page
    section = page.split('id="discussions"')[1]
    assert "Open talk" in section and "By publication" in section
    assert "Closed talk" not in section  # KR may not read the JP-only category
    assert "Closed talk" in author.get("/dossiers/JP/2017187096").text


def test_home_shows_what_is_new_for_the_user(as_user, db, jp_case) -> None:
    cat = make_category(db)
    author, csrf = as_user("jp.examiner")
    start_thread(author, csrf, cat, "Welcome thread", "Hello @kr.examiner")
    kr, _ = as_user("kr.examiner")
    from tests.forum_helpers import wait_for

    assert wait_for(lambda: "mentioned you" in kr.get("/").text)
    home = kr.get("/").text
    assert "Welcome thread" in home  # unread
    srpt, exrp = (f'href="/documents/{jp_case[k]}"' for k in ("srpt", "exrp"))
    assert srpt in home and exrp in home  # new documents
    cn, _ = as_user("cn.examiner")
    assert srpt in cn.get("/").text
    assert exrp not in cn.get("/").text  # restricted to KR
