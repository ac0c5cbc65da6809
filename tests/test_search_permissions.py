"""Search never reveals what a viewer may not see: not a hit, a count, a facet or a snippet.

The matrix of the issue (a JP-restricted document, an office-limited category, a
private conversation, a providing-only office, a forum-only token, anonymous
visitors) through the real API, and the access tokens checked against
``authz.can`` for every viewer and item shape.
"""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import select

from caseforum.authz import (
    CategoryTarget,
    DocumentTarget,
    DossierTarget,
    ThreadTarget,
    Viewer,
    can,
)
from caseforum.forum import service as forum
from caseforum.models import Office, User
from caseforum.search import acl
from caseforum.search.query import FACETS
from tests.dossier_helpers import token_for, upload
from tests.forum_helpers import make_category, start_thread
from tests.search_helpers import found, index_now


@pytest.fixture
def hidden_things(client, as_user, db, app) -> dict[str, int]:
    jp = token_for(db, "jp.examiner")
    done = upload(client, jp, "JP", "2019041872", b"only for JP eyes: glimmerfin",
                  filename="memo.txt", code="EXRP", visibility="restricted", offices="JP")
    assert done.status_code in (200, 201), done.text
    jp_client, csrf = as_user("jp.examiner")
    limited = make_category(db, "JP and CN only", offices=["JP", "CN"])
    start_thread(jp_client, csrf, limited, "Limited", "the word is plovercoil")
    users = {u.username: u for u in db.exec(select(User))}
    thread, _ = forum.create_thread(db, author=users["jp.examiner"], category=None,
                                    title="Just us", body="private word sternwhistle",
                                    participants=[users["kr.examiner"]])
    db.commit()
    index_now(app)
    return {"private": thread.id or 0}


@pytest.mark.usefixtures("hidden_things")
def test_restricted_document_limited_category_private_conversation(as_user, client,
                                                                   db) -> None:
    def total(username: str | None, q: str) -> dict:
        who = as_user(username)[0] if username else client
        return found(who, q)

    jp = total("jp.examiner", "glimmerfin")
    assert jp["total"] == 1 and jp["facets"]["office"] == {"JP": 1}
    for name in ("cn.examiner", "kr.examiner", "us.admin", None):
        answer = total(name, "glimmerfin")
        assert answer == {"total": 0, "page": 1, "pages": 0, "results": [],
                          "facets": {name: {} for name in FACETS}}, name
    assert total("cn.examiner", "plovercoil")["total"] == 1
    assert total("sg.examiner", "plovercoil")["total"] == 0
    assert total("sg.examiner", "plovercoil")["facets"]["kind"] == {}
    assert total("admin", "plovercoil")["total"] == 1  # platform admins read all (policy)
    for name, expected in (("jp.examiner", 1), ("kr.examiner", 1), ("cn.examiner", 0),
                           ("admin", 0)):
        assert total(name, "sternwhistle")["total"] == expected, name
    forum_only = token_for(db, "cn.examiner", "forum")
    dossiers = client.get("/api/v1/search", params={"q": "sulfide"}, headers=forum_only)
    assert dossiers.status_code == 200 and dossiers.json()["total"] == 0
    assert total("us.admin", "sulfide")["total"] == 0 or {
        r["office"] for r in total("us.admin", "sulfide")["results"]} == {"US"}


def test_search_page_shows_no_trace_of_a_hidden_word(as_user, hidden_things) -> None:
    cn, _ = as_user("cn.examiner")
    page = cn.get("/search", params={"q": "glimmerfin"})
    assert page.status_code == 200
    assert "0 results" in page.text and "glimmerfin</mark>" not in page.text
    assert 'class="facet"' not in page.text


# The tokens against the rules: every viewer shape, every item shape -------------

VIEWERS = [
    Viewer(),  # anonymous
    *(Viewer(user_id=uid, office_code=office, role=role, providing=providing,
             accessing=accessing, scopes=scopes)
      for uid, (office, role, providing, accessing, scopes) in enumerate(itertools.product(
          ("JP", "CN", "US"), ("examiner", "office_admin", "platform_admin"),
          (True, False), (True, False),
          (None, frozenset({"forum"}), frozenset({"dossiers:read"}))), start=1)),
]
OFFICES = ("JP", "CN", "US")
#: forum categories by id: open to all, limited to JP, limited to CN and US
CATEGORIES = {1: CategoryTarget(), 2: CategoryTarget(frozenset({"JP"})),
              3: CategoryTarget(frozenset({"CN", "US"}))}


def _public(office: str) -> bool:
    return office != "CN"  # JP and US let the public in, CN does not


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: f"{v.office_code}-{v.role}-"
                         f"{int(v.providing)}{int(v.accessing)}-{v.scopes and sorted(v.scopes)}")
def test_tokens_say_what_the_rules_say(viewer: Viewer) -> None:
    held = acl.viewer_tokens(viewer, {o for o in OFFICES if _public(o)}, CATEGORIES)

    def finds(tokens: set[str]) -> bool:
        return bool(held & tokens)

    for office in OFFICES:
        assert finds(acl.dossier_tokens(office)) == can(
            viewer, "dossier.view", DossierTarget(office, _public(office)))
        for visibility, named in (("public", ()), ("offices", ()), ("restricted", ("JP",)),
                                  ("restricted", ("CN", "US")), ("restricted", ())):
            target = DocumentTarget(office, _public(office), visibility, frozenset(named))
            assert finds(acl.document_tokens(office, visibility, named)) == (
                can(viewer, "document.view", target)
                and can(viewer, "dossier.view", DossierTarget(office, _public(office)))), (
                office, visibility, named)
    for cid, category in CATEGORIES.items():
        assert finds(acl.thread_tokens(is_private=False, participants=(),
                                       category_id=cid)) == can(
            viewer, "thread.view", ThreadTarget(category=category)), category
    for members in ((1, 2), (3,)):
        target = ThreadTarget(category=None, is_private=True, participants=frozenset(members))
        assert finds(acl.thread_tokens(is_private=True, participants=members,
                                       category_id=None)) == can(
            viewer, "thread.view", target), members


def test_offices_table_decides_public_access(db) -> None:
    """The anonymous side reads public access at query time (no re-index needed)."""
    offices = {o.code: o.public_access for o in db.exec(select(Office))}
    public = {code for code, on in offices.items() if on}
    assert acl.viewer_tokens(Viewer(), public, CATEGORIES) == (
        {f"public:{c}" for c in public} | {f"publicdoc:{c}" for c in public})


# Facet counts come only from what the viewer may see -------------------------------


@pytest.fixture
def quill_things(client, as_user, db, app) -> None:
    """The word quillbrace in a JP-restricted report, a report every accessing office
    sees, a post in a JP+CN category, a post in an open category and a private
    conversation of JP and KR."""
    jp = token_for(db, "jp.examiner")
    for code, visibility, offices in (("EXRP", "restricted", "JP"), ("SRPT", "offices", "")):
        done = upload(client, jp, "JP", "2019041872", b"quillbrace " + code.encode(),
                      filename=f"{code}.txt", code=code, visibility=visibility,
                      offices=offices)
        assert done.status_code in (200, 201), done.text
    jp_client, csrf = as_user("jp.examiner")
    start_thread(jp_client, csrf, make_category(db, "Quill limited", offices=["JP", "CN"]),
                 "Limited", "quillbrace in a limited category")
    start_thread(jp_client, csrf, make_category(db, "Quill open"), "Open",
                 "quillbrace in an open category")
    users = {u.username: u for u in db.exec(select(User))}
    forum.create_thread(db, author=users["jp.examiner"], category=None, title="Us two",
                        body="quillbrace between us", participants=[users["kr.examiner"]])
    db.commit()
    index_now(app)


@pytest.mark.usefixtures("quill_things")
@pytest.mark.parametrize(("username", "kinds", "groups", "categories"), [
    ("jp.examiner", {"document": 2, "post": 3}, {"examination": 1, "search": 1},
     {"Quill limited": 1, "Quill open": 1}),
    ("cn.examiner", {"document": 1, "post": 2}, {"search": 1},
     {"Quill limited": 1, "Quill open": 1}),
    ("kr.examiner", {"document": 1, "post": 2}, {"search": 1}, {"Quill open": 1}),
    ("sg.examiner", {"document": 1, "post": 1}, {"search": 1}, {"Quill open": 1}),
    ("us.admin", {"post": 1}, {}, {"Quill open": 1}),  # providing only: no JP dossiers
    (None, {}, {}, {}),
])
def test_facet_counts_only_count_what_the_viewer_sees(as_user, client, username, kinds,
                                                      groups, categories) -> None:
    who = as_user(username)[0] if username else client
    answer = found(who, "quillbrace")
    facets = answer["facets"]
    assert answer["total"] == sum(kinds.values())
    assert (facets["kind"], facets["group"], facets["category"]) == (kinds, groups,
                                                                     categories)
    assert facets["source"] == ({"hosted": kinds["document"]} if "document" in kinds else {})
    for name in ("kind", "office", "year"):  # every item has one value of these
        assert sum(facets[name].values()) == answer["total"], name
    # narrowing by a facet value counts within the same visible items
    for name, values in (("group", groups), ("category", categories)):
        for value, count in values.items():
            assert found(who, "quillbrace", **{name: value})["total"] == count


@pytest.mark.usefixtures("quill_things")
def test_a_category_the_viewer_cannot_read_is_not_named(as_user) -> None:
    sg, _ = as_user("sg.examiner")
    page = sg.get("/search", params={"q": "quillbrace"})
    assert page.status_code == 200 and "Quill open" in page.text
    assert "Quill limited" not in page.text  # neither a facet nor a filter option
    refused = sg.get("/api/v1/search", params={"q": "quillbrace", "category": "Quill limited"})
    assert refused.status_code == 422
    assert "no category called 'Quill limited'" in refused.json()["detail"]
    missing = sg.get("/api/v1/search", params={"q": "quillbrace", "category": "No such"})
    assert missing.json()["detail"].replace("No such", "Quill limited") == \
        refused.json()["detail"]  # absent or unreadable: the same answer
