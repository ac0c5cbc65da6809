"""The forum through pages and API: permissions, posting, editing, moderation."""

from __future__ import annotations

from html.parser import HTMLParser

from sqlmodel import select

from caseforum.models import Notification, User
from tests.forum_helpers import make_category, reply, start_thread, wait_for


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "script" and not dict(attrs).get("src"):
            self.problems.append("inline script")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag} {name}")
            if name in ("href", "src") and (value or "").strip().lower().startswith(
                    ("javascript:", "data:")):
                self.problems.append(f"{tag} {name}={value}")


def assert_nothing_executable(page: str) -> None:
    checker = _Checker()
    checker.feed(page)
    assert checker.problems == []


HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)> [x](javascript:alert(3))'


def test_thread_and_replies_render_sanitised(as_user, db) -> None:
    cat = make_category(db)
    jp, jp_csrf = as_user("jp.examiner")
    thread = start_thread(jp, jp_csrf, cat, "Fin geometry", "Does **anyone** know? " + HOSTILE)
    kr, kr_csrf = as_user("kr.examiner")
    reply(kr, kr_csrf, thread, "Yes — see _the_ search report.")
    page = kr.get(f"/threads/{thread}").text
    assert "<strong>anyone</strong>" in page and "<em>the</em>" in page
    assert_nothing_executable(page)
    assert "&lt;script&gt;alert(1)" in page  # shown as text, not run
    assert "Examiner Kim (KIPO)" in page


def test_category_limited_to_named_offices(as_user, db) -> None:
    cat = make_category(db, "East Asia", ["CN", "JP", "KR"])
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "Regional", "Hello neighbours")
    au, _ = as_user("au.examiner")
    assert "East Asia" not in au.get("/forum").text
    assert au.get(f"/forum/c/{cat}").status_code == 404
    assert au.get(f"/threads/{thread}").status_code == 404
    assert au.get(f"/api/v1/threads/{thread}").status_code == 404
    assert "East Asia" not in au.get("/api/v1/categories").text
    assert au.post(f"/threads/{thread}/posts", data={"csrf_token": _, "body": "hi"}
                   ).status_code == 404


def test_edit_keeps_history_and_only_the_author_edits(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "Typos", "Frist version")
    page = jp.get(f"/threads/{thread}").text
    post_id = int(page.split('id="post-')[1].split('"')[0])
    other, other_csrf = as_user("kr.examiner")
    assert other.post(f"/posts/{post_id}/edit", data={"csrf_token": other_csrf,
                                                      "body": "hijacked"}).status_code == 403
    saved = jp.post(f"/posts/{post_id}/edit", data={"csrf_token": csrf, "body": "First version"},
                    follow_redirects=False)
    assert saved.status_code == 303
    history = jp.get(f"/posts/{post_id}/revisions").text
    assert "Frist version" in history and "First version" in history
    assert "edited" in jp.get(f"/threads/{thread}").text


def test_mentions_and_replies_notify_with_a_bell_count(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    kr, kr_csrf = as_user("kr.examiner")
    kr.post("/notifications/read", data={"csrf_token": kr_csrf})  # the demo mentions kr too
    assert 'id="bell-count" class="bell-count">0<' in kr.get("/").text
    thread = start_thread(jp, csrf, cat, "Question", "@kr.examiner what did KIPO cite?")
    kr_id = db.exec(select(User.id).where(User.username == "kr.examiner")).one()

    def kr_notified() -> bool:
        db.expire_all()
        return bool(db.exec(select(Notification).where(
            Notification.user_id == kr_id, Notification.read_at.is_(None))).all())

    assert wait_for(kr_notified)
    page = kr.get("/notifications").text
    assert "mentioned you in “Question”" in page
    assert 'id="bell-count" class="bell-count on">1<' in kr.get("/").text
    first = int(jp.get(f"/threads/{thread}").text.split('id="post-')[1].split('"')[0])
    reply(kr, kr_csrf, thread, "Two X documents.", reply_to=str(first))
    jp_id = db.exec(select(User.id).where(User.username == "jp.examiner")).one()
    assert wait_for(lambda: bool(db.exec(select(Notification).where(
        Notification.user_id == jp_id, Notification.kind == "reply")).all()) or
        db.expire_all())
    kr.post("/notifications/read", data={"csrf_token": kr_csrf})
    assert 'id="bell-count" class="bell-count">0<' in kr.get("/").text


def test_a_mention_of_someone_who_cannot_read_the_thread_tells_them_nothing(as_user, db) -> None:
    cat = make_category(db, "JP only", ["JP"])
    jp, csrf = as_user("jp.examiner")
    start_thread(jp, csrf, cat, "Internal", "@kr.examiner should not hear of this")
    import time

    time.sleep(1.0)
    db.expire_all()
    kr_id = db.exec(select(User.id).where(User.username == "kr.examiner")).one()
    assert db.exec(select(Notification).where(Notification.user_id == kr_id,
                                              Notification.text.contains("Internal"))).all() == []


def test_reactions_toggle(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "Nice", "A useful report")
    post_id = int(jp.get(f"/threads/{thread}").text.split('id="post-')[1].split('"')[0])
    kr, kr_csrf = as_user("kr.examiner")
    kr.post(f"/posts/{post_id}/react/+1", data={"csrf_token": kr_csrf})
    assert '+1 <span class="n">1</span>' in jp.get(f"/threads/{thread}").text
    kr.post(f"/posts/{post_id}/react/+1", data={"csrf_token": kr_csrf})
    assert '+1 <span class="n">1</span>' not in jp.get(f"/threads/{thread}").text
    assert kr.post(f"/posts/{post_id}/react/heart", data={"csrf_token": kr_csrf}
                   ).status_code == 422


def test_lock_pin_hide_and_flags(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "Heated", "An opinion")
    kr, kr_csrf = as_user("kr.examiner")
    bad = reply(kr, kr_csrf, thread, "Something rude")
    jp.post(f"/posts/{bad}/flag", data={"csrf_token": csrf, "reason": "rude"})
    mod, mod_csrf = as_user("admin")
    assert "Something rude" in mod.get("/forum/flags").text
    assert kr.get("/forum/flags").status_code == 403
    assert kr.post(f"/posts/{bad}/hide", data={"csrf_token": kr_csrf}).status_code == 403
    mod.post(f"/posts/{bad}/hide", data={"csrf_token": mod_csrf, "reason": "tone"})
    page = jp.get(f"/threads/{thread}").text
    assert "Something rude" not in page and "hidden by a moderator: tone" in page
    assert "Something rude" not in mod.get("/forum/flags").text  # flag resolved
    mod.post(f"/threads/{thread}/lock", data={"csrf_token": mod_csrf})
    locked = kr.post(f"/threads/{thread}/posts", data={"csrf_token": kr_csrf, "body": "more"})
    assert locked.status_code == 403
    assert reply(mod, mod_csrf, thread, "Closing this thread.")
    mod.post(f"/threads/{thread}/pin", data={"csrf_token": mod_csrf})
    assert "pinned" in jp.get(f"/forum/c/{cat}").text


def test_private_conversation_only_for_participants(as_user, db) -> None:
    jp, csrf = as_user("jp.examiner")
    made = jp.post("/messages", data={"csrf_token": csrf, "to": "cn.examiner",
                                      "title": "Between us", "body": "Your view on X?"},
                   follow_redirects=False)
    assert made.status_code == 303
    thread = made.headers["location"]
    cn, _ = as_user("cn.examiner")
    assert "Your view on X?" in cn.get(thread).text
    kr, _ = as_user("kr.examiner")
    assert kr.get(thread).status_code == 404
    admin, _ = as_user("admin")
    assert admin.get(thread).status_code == 404  # moderators are not participants
    bad = jp.post("/messages", data={"csrf_token": csrf, "to": "nobody.here",
                                     "title": "x", "body": "y"})
    assert bad.status_code == 422 and "unknown user" in bad.text


def test_unread_counts_and_list(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "News", "First")
    kr, kr_csrf = as_user("kr.examiner")
    assert "News" in kr.get("/forum/unread").text
    kr.get(f"/threads/{thread}")
    assert "News" not in kr.get("/forum/unread").text
    reply(jp, csrf, thread, "Second")
    reply(jp, csrf, thread, "Third")
    assert "2 new" in kr.get("/forum/unread").text


def test_empty_post_and_bad_reply_get_clear_errors(as_user, db) -> None:
    cat = make_category(db)
    jp, csrf = as_user("jp.examiner")
    thread = start_thread(jp, csrf, cat, "Hello", "x")
    empty = jp.post(f"/threads/{thread}/posts", data={"csrf_token": csrf, "body": "   "})
    assert empty.status_code == 422 and "empty" in empty.text
    wrong = jp.post(f"/threads/{thread}/posts", data={"csrf_token": csrf, "body": "hi",
                                                      "reply_to": "99999"})
    assert wrong.status_code == 422 and "same thread" in wrong.text


def test_api_threads_and_posts_with_bearer_token(client, db) -> None:
    from tests.dossier_helpers import token_for

    cat = make_category(db)
    jp = token_for(db, "jp.examiner", "forum")
    made = client.post("/api/v1/threads", headers=jp,
                       json={"category": cat, "title": "API thread", "body": "from a script"})
    assert made.status_code == 201, made.text
    thread = made.json()["id"]
    post = client.post(f"/api/v1/threads/{thread}/posts", headers=jp, json={"body": "**bold**"})
    assert post.status_code == 201
    assert "<strong>bold</strong>" in post.json()["html"]
    edited = client.patch(f"/api/v1/posts/{post.json()['id']}", headers=jp,
                          json={"body": "_calmer_"})
    assert "<em>calmer</em>" in edited.json()["html"]
    kr = token_for(db, "kr.examiner", "forum")
    assert client.patch(f"/api/v1/posts/{post.json()['id']}", headers=kr,
                        json={"body": "mine now"}).status_code == 403
    got = client.get(f"/api/v1/threads/{thread}", headers=kr).json()
    assert [p["body"] for p in got["posts"]] == ["from a script", "_calmer_"]
    assert client.post("/api/v1/categories", headers=jp, json={"name": "x"}).status_code == 403
    read_only = token_for(db, "jp.examiner", "dossiers:read")
    assert client.get("/api/v1/threads", headers=read_only).status_code == 403


def test_category_for_a_named_office_group(client, db, as_user, monkeypatch, data_dir) -> None:
    from click.testing import CliRunner

    from caseforum.cli import cli
    from tests.dossier_helpers import token_for

    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    made = CliRunner().invoke(cli, ["offices", "group", "ASEAN", "--office", "SG",
                                    "--office", "TH", "--office", "VN"])
    assert made.output.strip() == "group ASEAN: SG TH VN"
    bad = CliRunner().invoke(cli, ["offices", "group", "Nowhere", "--office", "QQ"])
    assert bad.exit_code == 1 and "unknown office 'QQ'" in bad.output
    admin = token_for(db, "admin", "forum")
    cat = client.post("/api/v1/categories", headers=admin,
                      json={"name": "ASEAN desk", "group": "ASEAN"})
    assert cat.status_code == 201 and cat.json()["offices"] == ["SG", "TH", "VN"]
    sg, _ = as_user("sg.examiner")
    jp, _ = as_user("jp.examiner")
    assert "ASEAN desk" in sg.get("/forum").text
    assert "ASEAN desk" not in jp.get("/forum").text


def test_notifications_about_a_thread_one_may_no_longer_read_disappear(as_user, db) -> None:
    from caseforum.models import Category

    cat = make_category(db, "Was open")
    jp, csrf = as_user("jp.examiner")
    start_thread(jp, csrf, cat, "Soon closed", "@kr.examiner look at this")
    kr, _ = as_user("kr.examiner")
    assert wait_for(lambda: "Soon closed" in kr.get("/notifications").text)
    category = db.get(Category, cat)
    category.offices = ["JP"]  # narrowed: KR may no longer read it
    db.add(category)
    db.commit()
    assert "Soon closed" not in kr.get("/notifications").text
    assert "Soon closed" not in kr.get("/").text
