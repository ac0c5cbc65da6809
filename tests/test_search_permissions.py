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
                          "facets": {"kind": {}, "office": {}, "year": {}}}, name
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


def _public(office: str) -> bool:
    return office != "CN"  # JP and US let the public in, CN does not


@pytest.mark.parametrize("viewer", VIEWERS, ids=lambda v: f"{v.office_code}-{v.role}-"
                         f"{int(v.providing)}{int(v.accessing)}-{v.scopes and sorted(v.scopes)}")
def test_tokens_say_what_the_rules_say(viewer: Viewer) -> None:
    held = acl.viewer_tokens(viewer, {o for o in OFFICES if _public(o)})

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
    for offices in ((), ("JP",), ("CN", "US")):
        target = ThreadTarget(category=CategoryTarget(frozenset(offices)))
        assert finds(acl.thread_tokens(is_private=False, participants=(),
                                       category_offices=offices)) == can(
            viewer, "thread.view", target), offices
    for members in ((1, 2), (3,)):
        target = ThreadTarget(category=None, is_private=True, participants=frozenset(members))
        assert finds(acl.thread_tokens(is_private=True, participants=members,
                                       category_offices=None)) == can(
            viewer, "thread.view", target), members


def test_offices_table_decides_public_access(db) -> None:
    """The anonymous side reads public access at query time (no re-index needed)."""
    offices = {o.code: o.public_access for o in db.exec(select(Office))}
    public = {code for code, on in offices.items() if on}
    assert acl.viewer_tokens(Viewer(), public) == (
        {f"public:{c}" for c in public} | {f"publicdoc:{c}" for c in public})
