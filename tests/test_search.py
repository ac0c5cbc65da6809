"""Full-text search: words, prefixes, CJK text, facets, snippets, pages and the header box.

The demo's dossiers are indexed when the template database is made (the index is
copied for each test); what a test adds is indexed by ``index_now``.
"""

from __future__ import annotations

import html
import re
from datetime import date

from caseforum.dossiers.remote import store_dossier
from caseforum.sources import SourceApplication, SourceDocument, SourceDossier
from tests.dossier_helpers import token_for, upload
from tests.forum_helpers import make_category, reply, start_thread
from tests.search_helpers import found, index_now


def _urls(answer: dict) -> set[str]:
    return {r["url"] for r in answer["results"]}


def test_words_prefixes_and_numbers_find_the_dossier(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    answer = found(cn, "sulfide electrolytes")  # stemmed: electrolytes finds electrolyte
    assert "/dossiers/JP/2019041872" in _urls(answer)
    assert answer["facets"]["office"]["JP"] >= 1
    for q in ("applicant:Kaneshiro", 'applicant:"Kaneshiro Materials"', "ipc:H01M10/*",
              "ipc:H01M10/0562", "cited:JP2016-207528A", "cited:WO2018/047044",
              "特願2019-041872", "JP 2020-149862 A"):
        assert "/dossiers/JP/2019041872" in _urls(found(cn, q, kind="dossier")) or (
            q.startswith("cited:") and any(u.startswith("/documents/")
                                           for u in _urls(found(cn, q)))), q
    assert found(cn, "ipc:A01B")["total"] == 0
    codes = found(cn, "code:SRPT")
    assert codes["total"] >= 1 and set(codes["facets"]["kind"]) == {"document"}


def test_japanese_phrase_in_a_document_and_chinese_phrase_in_a_post(as_user, db,
                                                                     app) -> None:
    cn, csrf = as_user("cn.examiner")
    answer = found(cn, "アルジロダイト型結晶構造")  # from the JP claims (Japanese text)
    assert any(r["kind"] == "document" and r["office"] == "JP" for r in answer["results"])
    assert "<mark" in answer["results"][0]["snippet"]
    assert found(cn, "構造結晶")["total"] == 0  # bigrams must follow each other
    thread = start_thread(cn, csrf, make_category(db), "翅片", "换热器的翅片间距应小于2毫米。")
    reply(cn, csrf, thread, "Another <script>alert(1)</script> zebrafin remark")
    index_now(app)
    posts = found(cn, "翅片间距", kind="post")
    assert posts["total"] == 1 and posts["results"][0]["url"].startswith(f"/threads/{thread}#")
    snippet = found(cn, "zebrafin")["results"][0]["snippet"]
    assert "&lt;script&gt;" in snippet and "<script>" not in snippet


def test_sort_by_date_and_pages(as_user, db, app) -> None:
    cn, csrf = as_user("cn.examiner")
    thread = start_thread(cn, csrf, make_category(db), "Pages", "pagination probe 0")
    for i in range(1, 25):
        reply(cn, csrf, thread, f"pagination probe {i}")
    index_now(app)
    first = found(cn, "pagination probe", sort="date")
    assert first["total"] == 25 and first["pages"] == 2 and len(first["results"]) == 20
    second = found(cn, "pagination probe", sort="date", page="2")
    assert len(second["results"]) == 5
    assert not _urls(first) & _urls(second)
    assert first["results"][0]["url"].endswith(max(
        (r["url"] for r in first["results"] + second["results"] if "#post-" in r["url"]),
        key=lambda u: int(u.rsplit("-", 1)[1])).rsplit("#", 1)[1])  # newest first


def test_search_page_renders_whole_and_as_a_fragment(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    page = cn.get("/search", params={"q": "sulfide", "office": "JP"})
    assert page.status_code == 200 and "<html" in page.text
    assert 'href="/dossiers/JP/2019041872"' in page.text
    fragment = cn.get("/search", params={"q": "sulfide", "office": "KR"},
                      headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<section id="results"')
    assert "/dossiers/JP/2019041872" not in fragment.text  # the office filter applies
    bad = cn.get("/search", params={"q": "year:20x"})
    assert bad.status_code == 422 and "four digits" in bad.text


def test_header_box_searches_words_and_opens_numbers(as_user) -> None:
    cn, _ = as_user("cn.examiner")
    words = cn.get("/dossiers", params={"q": "solid electrolyte"}, follow_redirects=False)
    assert words.status_code == 303
    assert words.headers["location"] == "/search?q=solid%20electrolyte"
    number = cn.get("/dossiers", params={"q": "US 16/12"})
    assert number.status_code == 404 and "expected" in number.text  # a mistyped number


def test_document_text_uploaded_later_is_found(client, as_user, db, app) -> None:
    jp = token_for(db, "jp.examiner")
    done = upload(client, jp, "JP", "2019041872", "フィンピッチは2ミリ以下 quasifin".encode(),
                  filename="note.txt", code="EXRP", visibility="offices")
    assert done.status_code in (200, 201), done.text
    index_now(app)
    cn, _ = as_user("cn.examiner")
    assert found(cn, "フィンピッチ")["total"] == 1
    assert found(cn, "quasifin code:EXRP")["total"] == 1


def test_facets_source_group_and_category_filter_the_page_and_the_api(client, as_user, db,
                                                                     app) -> None:
    """A dossier from a remote source with an office action (whose title carries the
    dossier's), a search report on a hosted dossier and a post, all holding one word:
    each facet narrows to its part."""
    store_dossier(db, "opd_link", SourceDossier("opd:1", "US", "55555555", (SourceApplication(
        "US", "55555555", "55/555,555", date(2021, 3, 4), title="Gossamer louvre fins",
        documents=(SourceDocument("opd:1/ctnf", "CTNF", "Non-final rejection of gossamer",
                                  date(2022, 1, 5)),)),)))
    db.commit()
    jp = token_for(db, "jp.examiner")
    done = upload(client, jp, "JP", "2019041872", b"gossamer in a search report",
                  filename="s.txt", code="SRPT")
    assert done.status_code in (200, 201), done.text
    cn, csrf = as_user("cn.examiner")
    start_thread(cn, csrf, make_category(db, "Louvres"), "Louvres", "a gossamer louvre")
    index_now(app)

    facets = found(cn, "gossamer")["facets"]
    assert facets["source"] == {"opd_link": 2, "hosted": 1}
    assert facets["group"] == {"examination": 1, "search": 1}
    assert facets["category"] == {"Louvres": 1}
    remote = found(cn, "gossamer", source="opd_link")
    assert {r["kind"] for r in remote["results"]} == {"dossier", "document"}
    assert "/dossiers/US/55555555" in _urls(remote)
    assert _urls(found(cn, "gossamer", group="search")) == {
        u for u in _urls(found(cn, "gossamer", kind="document", source="hosted"))}
    assert found(cn, "gossamer", category="Louvres")["results"][0]["kind"] == "post"
    bad = cn.get("/api/v1/search", params={"q": "gossamer", "group": "searches"})
    assert bad.status_code == 422 and "group: one of search" in bad.json()["detail"]

    page = cn.get("/search", params={"q": "gossamer"})
    assert page.status_code == 200
    link = re.search(r'href="(/search\?q=gossamer&amp;category=Louvres&amp;sort=relevance)"',
                     page.text)
    assert link, "the category facet links to the narrowed search"
    narrowed = cn.get(html.unescape(link.group(1)))  # following the link: no JavaScript
    assert narrowed.status_code == 200 and "1 result<" in narrowed.text
    assert 'aria-current="true"' in narrowed.text  # the chosen value is marked
    assert '<option value="Louvres" selected>' in narrowed.text
    fragment = cn.get("/search", params={"q": "gossamer", "group": "search"},
                      headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<section id="results"')
    assert "1 result<" in fragment.text and "/documents/" in fragment.text
