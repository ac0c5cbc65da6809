"""Forum access in one place: what is hidden answers exactly like what is missing,
lists cost the same number of statements for one row or thirty, and the two
forum settings change who reads and who moderates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from caseforum.app import create_app
from caseforum.authz import Viewer, forum_policy, set_forum_policy
from caseforum.config import load_settings
from caseforum.db import open_session
from caseforum.forum import access, service
from caseforum.models import Category, Notification, Office, User
from tests.conftest import demo_engine, login
from tests.dossier_helpers import token_for
from tests.forum_helpers import make_category, reply, start_thread
from tests.sql_helpers import counted

MISSING = 987654


@pytest.fixture(autouse=True)
def keep_policy() -> Iterator[None]:
    """An app made here with other forum settings must not outlive the test."""
    previous = forum_policy()
    yield
    set_forum_policy(previous)


def user(db: Session, username: str) -> User:
    return db.exec(select(User).where(User.username == username)).one()


def viewer_of(db: Session, username: str) -> Viewer:
    found = user(db, username)
    return Viewer.of(found, db.get(Office, found.office_code))


def same_answer(hidden: Any, missing: Any, hidden_id: int) -> None:
    """Byte for byte the same answer (the asked-for id, where an answer repeats
    it, excepted)."""
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(f"/{hidden_id}", "/N") == missing.text.replace(f"/{MISSING}", "/N")


# Hidden looks like missing --------------------------------------------------------------


def test_hidden_and_missing_give_the_same_404_on_pages_and_api(as_user, db, client) -> None:
    seoul = make_category(db, "Seoul only", ["KR"])
    kr, kr_csrf = as_user("kr.examiner")
    thread = start_thread(kr, kr_csrf, seoul, "Local practice", "Between us")
    post = reply(kr, kr_csrf, thread, "More")
    jp, jp_csrf = as_user("jp.examiner")
    api = token_for(db, "jp.examiner", "forum")

    for path in ("/forum/c/{}", "/threads/{}", "/threads/{}/chat", "/posts/{}/revisions",
                 "/posts/{}/edit"):
        target = post if path.startswith("/posts") else seoul if "/c/" in path else thread
        same_answer(jp.get(path.format(target)), jp.get(path.format(MISSING)), target)
    same_answer(jp.post(f"/threads/{thread}/posts", data={"csrf_token": jp_csrf, "body": "hi"}),
                jp.post(f"/threads/{MISSING}/posts", data={"csrf_token": jp_csrf, "body": "hi"}),
                thread)
    same_answer(jp.post(f"/posts/{post}/flag", data={"csrf_token": jp_csrf, "reason": "x"}),
                jp.post(f"/posts/{MISSING}/flag", data={"csrf_token": jp_csrf, "reason": "x"}),
                post)

    same_answer(client.get(f"/api/v1/threads/{thread}", headers=api),
                client.get(f"/api/v1/threads/{MISSING}", headers=api), thread)
    same_answer(client.get("/api/v1/threads", params={"category": seoul}, headers=api),
                client.get("/api/v1/threads", params={"category": MISSING}, headers=api), seoul)
    same_answer(client.post("/api/v1/threads", headers=api,
                            json={"category": seoul, "title": "t", "body": "b"}),
                client.post("/api/v1/threads", headers=api,
                            json={"category": MISSING, "title": "t", "body": "b"}), seoul)
    same_answer(client.post(f"/api/v1/threads/{thread}/posts", headers=api, json={"body": "b"}),
                client.post(f"/api/v1/threads/{MISSING}/posts", headers=api, json={"body": "b"}),
                thread)
    same_answer(client.patch(f"/api/v1/posts/{post}", headers=api, json={"body": "b"}),
                client.patch(f"/api/v1/posts/{MISSING}", headers=api, json={"body": "b"}), post)
    assert client.get(f"/api/v1/threads/{MISSING}", headers=api).json() == {
        "detail": "No such thread", "code": "not_found"}
    huge = 2**70  # more than any database key: refused before the database, never a 500
    assert jp.get(f"/threads/{huge}").status_code == 422
    assert client.get(f"/api/v1/threads/{huge}", headers=api).json()["code"] == "invalid_input"


def test_readable_but_not_allowed_is_403_not_404(as_user, db) -> None:
    cat = make_category(db)
    kr, kr_csrf = as_user("kr.examiner")
    thread = start_thread(kr, kr_csrf, cat, "Open to all", "Hello")
    post = reply(kr, kr_csrf, thread, "Mine")
    jp, jp_csrf = as_user("jp.examiner")
    assert jp.post(f"/posts/{post}/edit", data={"csrf_token": jp_csrf, "body": "x"}
                   ).status_code == 403  # it exists for jp: no point hiding it
    assert jp.post(f"/threads/{thread}/lock", data={"csrf_token": jp_csrf}).status_code == 403


# Statements per list ------------------------------------------------------------------


def _add_threads(db: Session, category_id: int, count: int, start: int = 0) -> None:
    """``count`` threads by jp.examiner, each with a notification for kr.examiner."""
    author = user(db, "jp.examiner")
    reader = user(db, "kr.examiner")
    category = db.get(Category, category_id)
    for i in range(start, start + count):
        thread, _ = service.create_thread(db, author=author, category=category,
                                          title=f"Topic {i}", body="text")
        db.add(Notification(user_id=reader.id or 0, event_id=10_000 + i, kind="mention",
                            text=f"about topic {i}", link=f"/threads/{thread.id}",
                            thread_id=thread.id))
    db.commit()


def _statements(engine: Any, work: Any) -> tuple[int, Any]:
    with open_session(engine) as session, counted(engine) as statements:
        result = work(session)
    return len(statements), result


def test_lists_cost_the_same_statements_for_one_row_and_thirty(db, engine) -> None:
    jp = viewer_of(db, "jp.examiner")
    kr_user = user(db, "kr.examiner")

    def lists(session: Session) -> tuple[int, int, int, int]:
        categories = access.visible_categories(session, jp)
        everywhere = access.readable_threads(session, jp, limit=1000)
        in_first = access.readable_threads(session, jp, category_id=first.id)
        filtered = access.filter_threads(session, jp, everywhere)
        return len(categories), len(everywhere), len(in_first), len(filtered)

    service.create_office_group(db, name="Pacific", offices=["AU", "JP", "SG"])
    first = service.create_category(db, name="Cat 0", offices=["JP"], group="Pacific")
    db.commit()
    _, before = _statements(engine, lists)  # the demo data's own
    _add_threads(db, first.id or 0, 1)
    service.create_thread(db, author=user(db, "jp.examiner"), category=None, title="Private 0",
                          body="text", participants=[kr_user])
    db.commit()
    one_count, one = _statements(engine, lists)
    assert [a - b for a, b in zip(one, before, strict=True)] == [0, 2, 1, 2]

    service.create_office_group(db, name="Atlantic", offices=["GB", "US"])
    for i in range(1, 30):  # in two groups, for several offices, open ones too
        service.create_category(db, name=f"Cat {i}", offices=["JP"] if i % 3 else [],
                                group=("Pacific", "Atlantic", None)[i % 3])
    _add_threads(db, first.id or 0, 29, start=1)
    for i in range(1, 30):
        service.create_thread(db, author=user(db, "jp.examiner"), category=None,
                              title=f"Private {i}", body="text", participants=[kr_user])
    db.commit()
    thirty_count, thirty = _statements(engine, lists)
    assert [a - b for a, b in zip(thirty, before, strict=True)] == [29, 60, 30, 60]
    assert thirty_count == one_count


@pytest.mark.usefixtures("steady_identity_cache")
def test_api_and_pages_lists_cost_the_same_statements(data_dir, monkeypatch, db) -> None:
    cat = make_category(db, "Busy")
    _add_threads(db, cat, 1)
    token = token_for(db, "kr.examiner", "forum")
    # no consumers; the live hub's polling of the event log is not counted
    app = _app_with(data_dir, monkeypatch, run_consumers="false")
    engine = app.state.engine
    pages = ("/", "/forum", f"/forum/c/{cat}", "/forum/unread", "/notifications")
    api = ("/api/v1/threads", f"/api/v1/threads?category={cat}", "/api/v1/categories")

    def measure(browser: TestClient, script: TestClient) -> list[int]:
        sizes = []
        for client, path, headers in [(browser, p, {}) for p in pages] + [
                (script, p, token) for p in api]:
            with counted(engine) as statements:
                answer = client.get(path, headers=headers)
            assert answer.status_code == 200
            sizes.append(len([s for s in statements if "FROM event" not in s]))
        return sizes

    with TestClient(app) as browser, TestClient(app) as script:
        login(browser, "kr.examiner")
        measure(browser, script)  # first use of the token and session: recorded once
        one = measure(browser, script)
        _add_threads(db, cat, 29, start=1)
        for i in range(29):
            make_category(db, f"More {i}", ["JP", "KR"] if i % 2 else [])
        assert "about topic 29" in browser.get("/notifications").text
        assert measure(browser, script) == one


# The two settings ------------------------------------------------------------------------


def _app_with(data_dir: Any, monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(f"CASEFORUM_{name.upper()}", value)
    return create_app(load_settings(data_dir=data_dir, secret_key="s" * 32))


@pytest.mark.parametrize("read_all", [True, False])
def test_platform_admins_read_every_category_only_when_set(data_dir, monkeypatch, db,
                                                            read_all: bool) -> None:
    seoul = make_category(db, "Seoul only", ["KR"])
    app = _app_with(data_dir, monkeypatch,
                    forum_platform_admins_read_all="true" if read_all else "false")
    with TestClient(app) as kr, TestClient(app) as admin:
        csrf = login(kr, "kr.examiner")
        thread = start_thread(kr, csrf, seoul, "Local practice", "Between us")
        login(admin, "admin")
        assert ("Local practice" in admin.get("/").text) is read_all  # unread on the home page
        assert ("Seoul only" in admin.get("/forum").text) is read_all
        assert admin.get(f"/forum/c/{seoul}").status_code == (200 if read_all else 404)
        assert admin.get(f"/threads/{thread}").status_code == (200 if read_all else 404)


@pytest.mark.parametrize("moderate_open", [True, False])
def test_office_admins_moderate_open_categories_only_when_set(data_dir, monkeypatch, db,
                                                               moderate_open: bool) -> None:
    everyone = make_category(db, "Everyone")
    tokyo = make_category(db, "Tokyo only", ["JP"])
    app = _app_with(data_dir, monkeypatch,
                    forum_office_admins_moderate_open="true" if moderate_open else "false")
    with TestClient(app) as jp, TestClient(app) as jp_admin, TestClient(app) as admin:
        csrf = login(jp, "jp.examiner")
        open_thread = start_thread(jp, csrf, everyone, "Open", "to all")
        own_thread = start_thread(jp, csrf, tokyo, "Ours", "JP only")
        admin_csrf = login(jp_admin, "jp.admin")
        lock_open = jp_admin.post(f"/threads/{open_thread}/lock",
                                  data={"csrf_token": admin_csrf}, follow_redirects=False)
        assert lock_open.status_code == (303 if moderate_open else 403)
        assert jp_admin.post(f"/threads/{own_thread}/lock", data={"csrf_token": admin_csrf},
                             follow_redirects=False).status_code == 303
        platform_csrf = login(admin, "admin")
        assert admin.post(f"/threads/{open_thread}/pin", data={"csrf_token": platform_csrf},
                          follow_redirects=False).status_code == 303


@pytest.mark.services
def test_forum_lists_and_hidden_threads_on_postgres(postgres_url: str, tmp_path: Any) -> None:
    """The list queries (a sub-select of one's conversations, an empty IN for a
    viewer with no categories) and the 404s behave the same on PostgreSQL."""
    settings = load_settings(data_dir=tmp_path, database_url=postgres_url,
                             secret_key="p" * 32, run_consumers=False)
    engine = demo_engine(settings)
    with open_session(engine) as db:
        seoul = make_category(db, "Seoul only", ["KR"])
        kr_user = user(db, "kr.examiner")
        thread, _ = service.create_thread(db, author=kr_user, category=db.get(Category, seoul),
                                          title="Local practice", body="Between us")
        private, _ = service.create_thread(db, author=kr_user, category=None, title="Just us",
                                           body="hi", participants=[user(db, "jp.examiner")])
        db.commit()
        thread_id, private_id = thread.id, private.id
        no_forum = Viewer(user_id=kr_user.id, office_code="KR", role="examiner",
                          scopes=frozenset({"dossiers:read"}))
        assert access.readable_threads(db, no_forum) == []
    engine.dispose()
    with TestClient(create_app(settings)) as jp:
        login(jp, "jp.examiner")
        assert "Just us" in jp.get("/forum").text
        assert "Local practice" not in jp.get("/forum/unread").text
        same_answer(jp.get(f"/threads/{thread_id}"), jp.get(f"/threads/{MISSING}"), thread_id)
        assert jp.get(f"/threads/{private_id}").status_code == 200


# Role tests that became rules ---------------------------------------------------------------


def test_statistics_and_exchange_list_follow_the_rules(as_user) -> None:
    admin, _ = as_user("admin")
    jp_admin, _ = as_user("jp.admin")
    office_box = 'name="office"'
    assert office_box in admin.get("/stats").text  # stats.view_all: any office, or all
    assert office_box not in jp_admin.get("/stats").text  # its own office only
    every = "Every exchange on this instance"
    assert every in admin.get("/ice").text  # ice.exchanges.list_all
    assert every not in jp_admin.get("/ice").text
