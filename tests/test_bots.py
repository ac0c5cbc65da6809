"""The bot platform: triggers, rate limit, isolation of failing and hanging bots,
idempotency, per-reader rendering of answers, the built-in bots and the docs example."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import Session, select

from caseforum import accounts, hookimpl
from caseforum.app import create_app
from caseforum.bots import Bot, BotAnswer, BotError, Triggers, dossier_embed
from caseforum.bots import example as example_plugin
from caseforum.bots.base import BotReference, find_invocations, load_bots
from caseforum.bots.builtin import CitationBot, DossierBot, NewContentBot
from caseforum.bots.context import ReadOnlyError, read_only_session
from caseforum.bots.runner import BotRunner
from caseforum.db import open_session
from caseforum.doccodes import DocTypeRegistry
from caseforum.dossiers import service as dossier_service
from caseforum.dossiers.schemas import CitationIn
from caseforum.events import process_pending
from caseforum.forum import service as forum
from caseforum.models import (
    Application,
    BotRun,
    Category,
    ConsumerCursor,
    Document,
    Event,
    Notification,
    Post,
    Thread,
    User,
)
from caseforum.plugin_host import PluginHost
from caseforum.plugins import builtin_bots
from caseforum.storage import FileStore
from tests.dossier_helpers import pdf_bytes

ROOT = Path(__file__).resolve().parent.parent
JP_APP = "JP 2019-041872"  # demo family 1; its JP search report is restricted to CN and KR


# Helpers ---------------------------------------------------------------------------


@pytest.fixture
def app(settings: Any) -> Any:
    """The app without its background consumers: each test drives the runner itself."""
    app = create_app(settings.model_copy(update={"run_consumers": False}))
    return app


@pytest.fixture
def reader(engine: Any) -> Any:
    """``reader("cn.examiner")``: API headers for that user (a token: no slow log-in)."""

    def make(username: str, *scopes: str) -> dict[str, str]:
        with open_session(engine) as session:
            _, plain = accounts.create_token(session, user=user(session, username),
                                             scopes=list(scopes) or ["forum", "dossiers:read"])
            session.commit()
        return {"Authorization": f"Bearer {plain}"}

    return make


@pytest.fixture(autouse=True)
def fresh_log(engine: Any) -> None:
    """Start the runner's cursor after the demo data's history, as on a new server."""
    with open_session(engine) as session:
        last = session.exec(select(func.max(Event.id))).one() or 0
        cursor = session.get(ConsumerCursor, BotRunner.name) or ConsumerCursor(
            name=BotRunner.name)
        cursor.last_event_id = last
        session.add(cursor)
        session.commit()


def user(session: Session, username: str) -> User:
    return session.exec(select(User).where(User.username == username)).one()


def new_thread(engine: Any, body: str, *, author: str = "jp.examiner",
               title: str = "Argyrodite family") -> tuple[int, int]:
    """A thread in a category every office reads; returns (thread id, first post id)."""
    with open_session(engine) as session:
        category = session.exec(select(Category)).first() or forum.create_category(
            session, name="Electrochemistry")
        thread, post = forum.create_thread(session, author=user(session, author),
                                           category=category, title=title, body=body)
        session.commit()
        return thread.id or 0, post.id or 0


def say(engine: Any, thread_id: int, body: str, *, author: str = "jp.examiner") -> int:
    with open_session(engine) as session:
        thread = session.get(Thread, thread_id)
        assert thread is not None
        post = forum.add_post(session, author=user(session, author), thread=thread, body=body)
        session.commit()
        return post.id or 0


def runs(engine: Any, **where: Any) -> list[BotRun]:
    with open_session(engine) as session:
        query = select(BotRun).order_by(BotRun.id)
        for key, value in where.items():
            query = query.where(getattr(BotRun, key) == value)
        return list(session.exec(query))


def answers(engine: Any, thread_id: int) -> list[tuple[Post, User]]:
    """The bots' posts in a thread, oldest first."""
    with open_session(engine) as session:
        return list(session.exec(select(Post, User).join(User, User.id == Post.author_id).where(
            Post.thread_id == thread_id, User.role == "bot").order_by(Post.id)))


def bots_of(*bots: Any) -> Any:
    return lambda: list(bots)


class Recorder(Bot):
    """Answers every call with what it was given, and remembers the contexts."""

    def __init__(self, name: str, triggers: Triggers, probe: Any = None) -> None:
        self.name, self.triggers, self.probe = name, triggers, probe
        self.seen: list[Any] = []
        self.probed: list[Any] = []

    def handle(self, post: Any, ctx: Any) -> BotAnswer:
        self.seen.append(ctx)
        if self.probe:
            self.probed.append(self.probe(ctx))
        return BotAnswer(f"{self.name} saw {len(ctx.invocations)} invocation(s)")


class Boom(Bot):
    name = "boom"
    triggers = Triggers(commands=("/boom",))

    def handle(self, post: Any, ctx: Any) -> BotAnswer:
        raise ValueError("kaput")


class Hang(Bot):
    """Blocks until released (the test releases it, so no thread outlives the test)."""

    name = "hang"
    triggers = Triggers(commands=("/hang",))

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def handle(self, post: Any, ctx: Any) -> BotAnswer:
        self.calls += 1
        self.release.wait(30)
        return BotAnswer("too late")


@pytest.fixture
def hang() -> Iterator[Hang]:
    bot = Hang()
    yield bot
    bot.release.set()


def api_html(client: Any, headers: dict[str, str], thread_id: int, post_id: int) -> str:
    """A post's HTML as ``GET /api/v1/threads/{id}`` gives it to one reader."""
    data = client.get(f"/api/v1/threads/{thread_id}", headers=headers).json()
    return next(p["html"] for p in data["posts"] if p["id"] == post_id)


# Triggers --------------------------------------------------------------------------


def test_commands_mentions_and_references_are_found_outside_code_and_quotes() -> None:
    triggers = Triggers(commands=("/citations",), mention=True, on_reference=True)
    ref = BotReference("application", "JP", "2019041872", JP_APP)
    body = ("Hi all.\n/citations JP 2019-041872\nand @citations US 16/123,456 please\n"
            "> /citations quoted, not asked\n`@citations` in code\n```\n/citations x\n```\n"
            "/citationsX is another word")
    found = find_invocations("citations", triggers, body, [ref])
    assert [(i.trigger, i.args) for i in found] == [
        ("command", "JP 2019-041872"), ("mention", "US 16/123,456 please"),
        ("reference", "")]
    assert find_invocations("citations", triggers, "mail me@citations.org", []) == []


def test_bots_with_bad_names_or_triggers_are_refused_and_the_rest_load() -> None:
    good = Recorder("good", Triggers(commands=("/good",)))
    loaded, problems = load_bots([
        good, Recorder("Bad Name", Triggers()), Recorder("good", Triggers()),
        Recorder("other", ["@someone"]),  # type: ignore[arg-type]
    ])
    assert [b.name for b in loaded] == ["good"]
    assert len(problems) == 3 and "@other" in problems[2]
    # a plain list of strings is accepted, as in the hook's short example
    assert load_bots([Recorder("echo", ["/echo", "@echo"])])[0][0].triggers == \
        Triggers(commands=("/echo",), mention=True)  # type: ignore[arg-type]


def test_dossier_command_answers_with_a_card_for_readers_who_may_see_it(
        engine: Any, client: Any, reader: Any) -> None:
    thread_id, post_id = new_thread(engine, f"/dossier {JP_APP}")
    process_pending(BotRunner(engine, bots_of(DossierBot())), engine)

    [(answer, bot_user)] = answers(engine, thread_id)
    assert (bot_user.username, bot_user.office_code, str(bot_user.role)) == ("dossier", "IB", "bot")
    assert bot_user.password_hash is None
    assert answer.reply_to_id == post_id
    assert answer.embeds == [dossier_embed("JP", "2019041872", asked=JP_APP)]
    assert answer.body == "`JP 2019-041872`"  # the number understood; the card says the rest
    [run] = runs(engine)
    assert (run.status, run.answer_post_id, run.thread_id) == ("answered", answer.id, thread_id)

    jp = api_html(client, reader("jp.examiner"), thread_id, answer.id or 0)
    # the US office does not access other offices' dossiers
    us = api_html(client, reader("us.admin"), thread_id, answer.id or 0)
    assert "Sulfide solid electrolyte" in jp and "No dossier you may see" not in jp
    assert "Sulfide solid electrolyte" not in us and "JP 2019-041872" in us
    assert "No dossier you may see for <code>JP 2019-041872</code>" in us


def test_the_dossier_answer_does_not_tell_missing_from_hidden(engine: Any, client: Any,
                                                             reader: Any) -> None:
    """Same words for a dossier the asker may not see and one that does not exist."""
    thread_id, _ = new_thread(engine, f"/dossier {JP_APP}", author="us.admin")
    say(engine, thread_id, "/dossier JP 2099-999999", author="us.admin")
    say(engine, thread_id, "/dossier not-a-number", author="us.admin")
    process_pending(BotRunner(engine, bots_of(DossierBot())), engine)

    posts = [p for p, _ in answers(engine, thread_id)]
    hidden, missing, unreadable = (p.body for p in posts)
    assert hidden.replace("2019-041872", "N") == missing.replace("2099-999999", "N")
    assert hidden == "`JP 2019-041872`"
    assert "I can't read `not-a-number`" in unreadable
    # and what the asker reads under each: the same line, only the number differs
    headers = reader("us.admin")
    hidden_html, missing_html = (api_html(client, headers, thread_id, p.id or 0)
                                 for p in posts[:2])
    assert hidden_html.replace("2019-041872", "N") == missing_html.replace("2099-999999", "N")
    assert "No dossier you may see for" in hidden_html


def test_mention_trigger_and_citations_rendered_per_reader(engine: Any, client: Any,
                                                           reader: Any) -> None:
    with open_session(engine) as session:
        app = session.exec(select(Application).where(Application.office_code == "JP",
                                                     Application.number == "2019041872")).one()
        report = session.exec(select(Document).where(Document.application_id == app.id,
                                                     Document.visibility == "restricted")).one()
        dossier_service.add_citation(session, app=app, actor_id=None, data=CitationIn(
            cited="EP 1 234 567 A1", category="X", claims="1-3", phase="search",
            document_id=report.id))
        session.commit()
    thread_id, _ = new_thread(engine, f"What did the others cite? @citations {JP_APP}")
    process_pending(BotRunner(engine, bots_of(CitationBot(), DossierBot())), engine)

    [(answer, bot_user)] = answers(engine, thread_id)
    assert bot_user.username == "citations"
    assert answer.embeds == [{"kind": "citations", "office": "JP", "number": "2019041872",
                              "asked": JP_APP}]
    # CN is named in the restricted search report; AU accesses dossiers but is not named
    cn_html = api_html(client, reader("cn.examiner"), thread_id, answer.id or 0)
    au_html = api_html(client, reader("au.examiner"), thread_id, answer.id or 0)
    assert "EP 1 234 567 A1" in cn_html
    assert "EP 1 234 567 A1" not in au_html
    for html in (cn_html, au_html):  # both see the family's other citations, grouped
        assert "KR 10-2018-0076132 A" in html and "family-citations" in html


def test_reference_trigger_gets_the_posts_numbers(engine: Any) -> None:
    watcher = Recorder("watcher", Triggers(on_reference=True),
                       probe=lambda ctx: ctx.find_dossier("WO 2020/179934 A1").office_code)
    thread_id, _ = new_thread(engine, "No number here.")
    say(engine, thread_id, f"Compare {JP_APP} with WO 2020/179934 A1.")
    process_pending(BotRunner(engine, bots_of(watcher)), engine)

    [ctx] = watcher.seen
    assert [(r.kind, r.office, r.number) for r in ctx.references] == [
        ("application", "JP", "2019041872"), ("publication", "WO", "2020179934")]
    assert ctx.post.author == "jp.examiner" and ctx.thread.id == thread_id
    assert watcher.probed == ["IB"]  # a publication number, looked up as the asker
    assert len(answers(engine, thread_id)) == 1


# Rate limit, failures, timeouts ----------------------------------------------------


def test_rate_limit_per_bot_and_thread(engine: Any) -> None:
    thread_id, _ = new_thread(engine, f"/dossier {JP_APP}")
    for _ in range(3):
        say(engine, thread_id, f"/dossier {JP_APP}")
    other_id, _ = new_thread(engine, f"/dossier {JP_APP}", title="Another thread")
    process_pending(BotRunner(engine, bots_of(DossierBot()), rate_limit=3), engine)

    assert [r.status for r in runs(engine, thread_id=thread_id)] == ["answered"] * 3 + ["limited"]
    assert "limit 3" in runs(engine, thread_id=thread_id)[-1].error
    assert len(answers(engine, thread_id)) == 3
    assert [r.status for r in runs(engine, thread_id=other_id)] == ["answered"]


def test_a_bot_that_raises_is_isolated_logged_and_reported(engine: Any, client: Any,
                                                           reader: Any, caplog: Any) -> None:
    thread_id, post_id = new_thread(engine, f"/boom\n/dossier {JP_APP}")
    with caplog.at_level(logging.ERROR, logger="caseforum.bots.runner"):
        process_pending(BotRunner(engine, bots_of(Boom(), DossierBot())), engine)

    boom, dossier = runs(engine, post_id=post_id)
    assert (boom.bot, boom.status, boom.answer_post_id) == ("boom", "error", None)
    assert "ValueError: kaput" in boom.error and "test_bots.py" in boom.error
    assert dossier.status == "answered"  # the other bot still answered
    assert "bot boom failed" in caplog.text
    with open_session(engine) as session:
        [note] = session.exec(select(Notification).where(Notification.kind == "bot_error"))
        assert note.user_id == user(session, "jp.examiner").id and note.post_id == post_id
        assert note.text.startswith("The boom bot could not answer: it ran into an error")
        assert "kaput" not in note.text  # the details are for the administrators

    page = client.get("/admin/bots", headers=reader("admin", "admin"))
    assert page.status_code == 200
    assert "ValueError: kaput" in page.text and "Dossier bot" in page.text
    assert client.get("/admin/bots", headers=reader("jp.admin", "admin")).status_code == 403


def test_bot_error_message_reaches_the_asker(engine: Any) -> None:
    class Picky(Bot):
        name = "picky"
        triggers = Triggers(commands=("/picky",))

        def handle(self, post: Any, ctx: Any) -> BotAnswer:
            raise BotError("give me a WO number")

    _, post_id = new_thread(engine, "/picky")
    process_pending(BotRunner(engine, bots_of(Picky())), engine)
    with open_session(engine) as session:
        note = session.exec(select(Notification).where(Notification.post_id == post_id)).one()
    assert note.text == "The picky bot could not answer: give me a WO number"


def test_a_hanging_bot_times_out_and_others_and_posting_carry_on(
        engine: Any, hang: Hang, client: Any, reader: Any) -> None:
    runner = BotRunner(engine, bots_of(hang, DossierBot()), timeout=0.3, max_stuck=1)
    thread_id, post_id = new_thread(engine, f"/hang\n/dossier {JP_APP}")
    started = time.monotonic()
    process_pending(runner, engine)
    assert time.monotonic() - started < 2

    stuck, dossier = runs(engine, post_id=post_id)
    assert (stuck.status, stuck.error) == ("timeout", "no answer within 0.3 s")
    assert dossier.status == "answered"
    assert runner.stuck("hang") == 1

    # posting goes on while the bot is stuck
    response = client.post(f"/api/v1/threads/{thread_id}/posts", json={"body": "/hang"},
                           headers=reader("jp.examiner"))
    assert response.status_code == 201
    process_pending(runner, engine)  # still stuck: not started again, times out at once
    assert hang.calls == 1
    assert runs(engine, bot="hang")[-1].error.startswith("not started")

    hang.release.set()
    deadline = time.monotonic() + 5
    while runner.stuck("hang") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.stuck("hang") == 0
    assert [p.body for p, _ in answers(engine, thread_id) if "too late" in p.body] == []
    with open_session(engine) as session:
        note = session.exec(select(Notification).where(Notification.post_id == post_id)).one()
    assert "did not answer within 0.3 seconds" in note.text


# Idempotency ----------------------------------------------------------------------


def test_reading_the_log_again_never_answers_twice(engine: Any) -> None:
    thread_id, _ = new_thread(engine, f"/dossier {JP_APP}")
    runner = BotRunner(engine, bots_of(DossierBot()))
    process_pending(runner, engine)
    with open_session(engine) as session:  # as if the cursor had not been saved
        session.exec(update(ConsumerCursor).where(ConsumerCursor.name == runner.name)
                     .values(last_event_id=0))  # type: ignore[call-overload]
        session.commit()
    process_pending(BotRunner(engine, bots_of(DossierBot()), max_age=86400), engine)
    assert len(answers(engine, thread_id)) == 1
    assert len(runs(engine)) == 1


def test_work_left_pending_by_a_crash_is_done_once(engine: Any) -> None:
    class Crashing(BotRunner):
        def after_commit(self) -> None:
            self._jobs = []  # the process dies before calling the bot

    thread_id, _ = new_thread(engine, f"/dossier {JP_APP}")
    process_pending(Crashing(engine, bots_of(DossierBot())), engine)
    assert [r.status for r in runs(engine)] == ["pending"]

    runner = BotRunner(engine, bots_of(DossierBot()))
    assert process_pending(runner, engine) == 0  # the cursor had moved on
    assert runner.recover() == 0  # not stale yet: it may still be in flight
    assert runner.recover(older_than=0) == 1
    assert runner.recover(older_than=0) == 0
    assert [r.status for r in runs(engine)] == ["answered"]
    assert len(answers(engine, thread_id)) == 1


def test_bots_may_not_write(engine: Any) -> None:
    session = read_only_session(engine)
    try:
        session.add(User(username="sneaky", office_code="JP"))
        with pytest.raises(ReadOnlyError):
            session.flush()
    finally:
        session.rollback()
        session.close()


# New content ----------------------------------------------------------------------


def _add_document(engine: Any, settings: Any, *, offices: tuple[str, ...]) -> int:
    with open_session(engine) as session:
        app = dossier_service.get_dossier(session, office="JP", number="2019-041872")
        assert app is not None
        meta = dossier_service.DocumentMeta(code="CTNF", date=date(2021, 5, 1),
                                            visibility="restricted", offices=offices)
        doc, _ = dossier_service.add_document(
            session, FileStore(settings.storage_dir), app=app, meta=meta,
            stream=io.BytesIO(pdf_bytes("Second notice of reasons for refusal")),
            filename="second-refusal.pdf", max_bytes=10_000_000,
            registry=DocTypeRegistry.with_defaults(), actor_id=None)
        session.commit()
        return doc.id or 0


def test_new_content_bot_notes_a_new_document_where_the_dossier_is_discussed(
        engine: Any, settings: Any, client: Any, reader: Any) -> None:
    by_app, _ = new_thread(engine, f"Who examined {JP_APP}?")
    by_publication, _ = new_thread(engine, "Same family: JP 2020-149862 A", title="Pub")
    unrelated, _ = new_thread(engine, "Nothing to do with it.", title="Other")
    # only asked about: the command's number is no reference, the bot's block names it
    asked, _ = new_thread(engine, f"/dossier {JP_APP}", title="Asked")
    asked_by_pub, _ = new_thread(engine, "/citations JP 2020-149862 A", title="By pub")
    runner = BotRunner(engine, bots_of(NewContentBot(), DossierBot(), CitationBot()))
    process_pending(runner, engine)
    document_id = _add_document(engine, settings, offices=("KR",))
    # started after the document arrived: it is not news there
    late, _ = new_thread(engine, f"Late to {JP_APP}", title="Late")
    process_pending(runner, engine)

    for thread_id in (by_app, by_publication):
        [(note, bot_user)] = answers(engine, thread_id)
        assert bot_user.username == "new-content"
        assert note.body == "New content in a dossier discussed here."
        assert note.embeds == [{"kind": "document", "document_id": document_id}]
    assert answers(engine, unrelated) == [] and answers(engine, late) == []
    for thread_id in (asked, asked_by_pub):
        notes = [a for a, u in answers(engine, thread_id) if u.username == "new-content"]
        assert [n.embeds for n in notes] == [[{"kind": "document", "document_id": document_id}]]
    [run] = runs(engine, bot="new-content")
    assert run.status == "answered" and run.post_id < 0

    note_id = answers(engine, by_app)[0][0].id or 0  # KR is named in the document, AU not
    assert f"/documents/{document_id}" in api_html(client, reader("kr.examiner"), by_app,
                                                   note_id)
    # AU may not see the document: the note itself is absent, so nothing hints at it
    au_posts = client.get(f"/api/v1/threads/{by_app}", headers=reader("au.examiner")).json()
    assert note_id not in [p["id"] for p in au_posts["posts"]]
    # ... and leaves no other trace: not in the count, the order or the unread marks
    listed = {t["id"]: t for t in client.get("/api/v1/threads",
                                             headers=reader("au.examiner")).json()}
    assert listed[by_app]["post_count"] == len(au_posts["posts"])
    with Session(engine) as session:
        au = user(session, "au.examiner")
        from caseforum.forum.service import mark_read, unread_counts
        from caseforum.models import Thread

        thread = session.get(Thread, by_app)
        mark_read(session, user_id=au.id, thread=thread)
        session.commit()
        assert unread_counts(session, user_id=au.id, thread_ids=[by_app]) == {}
        assert thread.last_post_id != note_id

    process_pending(runner, engine)  # nothing new: nothing posted again
    assert len(answers(engine, by_app)) == 1


# Plugins and the documented example -----------------------------------------------


def test_built_in_bots_come_from_a_plugin_that_can_be_switched_off(engine: Any) -> None:
    host = PluginHost()
    host.load(use_entry_points=False)
    if "builtin_bots" not in host.records:
        host.add(builtin_bots, name="builtin_bots")
    runner = BotRunner(engine, host.bots)
    assert {b.name for b in runner.load()} >= {"dossier", "citations", "new-content"}

    host.set_enabled("builtin_bots", False)
    thread_id, _ = new_thread(engine, f"/dossier {JP_APP}")
    process_pending(runner, engine)
    assert runs(engine) == [] and answers(engine, thread_id) == []


def _doc_example() -> str:
    text = (ROOT / "docs" / "bots.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    return next(b for b in blocks if "class FamilyBot" in b)


def test_the_documented_example_is_the_tested_module(engine: Any) -> None:
    source = (ROOT / "src" / "caseforum" / "bots" / "example.py").read_text()
    assert _doc_example().strip() in source

    host = PluginHost()
    host.add(example_plugin, name="family_bot")
    thread_id, _ = new_thread(engine, f"/family {JP_APP}")
    say(engine, thread_id, f"/family {JP_APP}", author="us.admin")
    process_pending(BotRunner(engine, host.bots), engine)

    jp_answer, us_answer = (p for p, _ in answers(engine, thread_id))
    offices = {e["office"] for e in jp_answer.embeds}
    assert {"JP", "IB", "US", "CN", "KR"} <= offices  # every member, as JP may see them
    assert us_answer.embeds == []  # the US office may not see the JP dossier: no look-up
    assert jp_answer.body == us_answer.body


class _Plugin:
    """A plugin object made in a test."""

    def __init__(self, *bots: Any) -> None:
        self._bots = list(bots)

    @hookimpl
    def register_bots(self) -> list[Any]:
        return self._bots


def test_a_username_taken_by_a_person_is_not_used(engine: Any) -> None:
    impostor = Recorder("jp.examiner", Triggers(commands=("/me",)))
    host = PluginHost()
    host.add(_Plugin(impostor), name="impostor")
    thread_id, _ = new_thread(engine, "/me")
    process_pending(BotRunner(engine, host.bots), engine)
    [run] = runs(engine)
    assert run.status == "error" and "belongs to a person" in run.error
    assert answers(engine, thread_id) == []


def test_a_bot_note_whose_every_block_is_hidden_is_not_shown(as_user, db) -> None:
    """A reader who may not see the dossier does not even learn that a note exists."""
    from caseforum.forum import service as forum_service
    from caseforum.forum.view import Renderer
    from caseforum.models import Post
    from tests.forum_helpers import make_category, start_thread

    cat = make_category(db, "Bot notes")
    author, csrf = as_user("jp.examiner")
    thread_id = start_thread(author, csrf, cat, "Notes", "hello")
    jp_doc = db.exec(select(Document).join(Application).where(
        Application.office_code == "JP")).first()
    from caseforum.models.account import Role

    bot = User(username="note.bot", office_code="IB", role=Role.bot)
    db.add(bot)
    db.commit()
    from caseforum.models import Thread

    thread = db.get(Thread, thread_id)
    forum_service.add_post(db, author=bot, thread=thread, body="New content here.",
                           embeds=[{"kind": "document", "document_id": jp_doc.id}])
    db.commit()
    from caseforum.authz import Viewer
    from caseforum.models import Office

    posts = list(db.exec(select(Post).where(Post.thread_id == thread_id)))
    for name, visible in (("kr.examiner", True), ("us.admin", False)):
        u = user(db, name)
        viewer = Viewer.of(u, db.get(Office, u.office_code))
        from caseforum.plugin_host import PluginHost
        from caseforum.web.templating import make_environment

        host = PluginHost()
        host.load()
        views = Renderer(db, viewer, host, make_environment([])).posts(posts)
        assert ("New content here." in [v.post.body for v in views]) is visible


# The asker's language ----------------------------------------------------------------


def test_a_bot_answers_in_the_asker_s_language(engine: Any, as_user: Any) -> None:
    """The answer's text is in the asker's language (their choice, else the page's
    they asked on, else the instance default); the card in it is drawn in each
    reader's own."""
    with open_session(engine) as session:
        user(session, "cn.examiner").locale = "zh-Hans"
        session.commit()
    thread_id, _ = new_thread(engine, "/dossier", author="cn.examiner")
    say(engine, thread_id, "/dossier not-a-number", author="cn.examiner")
    say(engine, thread_id, f"/dossier {JP_APP}", author="cn.examiner")
    other_id, _ = new_thread(engine, "/dossier", author="jp.examiner")  # no language chosen
    process_pending(BotRunner(engine, bots_of(DossierBot()), default_language="ja"), engine)

    hint, unreadable, card = (p.body for p, _ in answers(engine, thread_id))
    [default] = (p.body for p, _ in answers(engine, other_id))
    assert hint == "请在命令后写上申请号或公开号，例如 `/dossier US 16/123,456`。"
    assert unreadable.startswith("无法将 `not-a-number` 识别为号码：")
    assert card == "`JP 2019-041872`"
    assert default == ("続けて出願番号または公開番号を書いてください"
                       "（例: `/dossier US 16/123,456`）。")

    # the card in the answer: Chinese for the Chinese reader, Korean for the Korean one
    cn, _ = as_user("cn.examiner")
    kr, kr_token = as_user("kr.examiner")
    kr.post("/settings/locale", data={"language": "ko", "csrf_token": kr_token})
    zh_page, ko_page = cn.get(f"/threads/{thread_id}").text, kr.get(f"/threads/{thread_id}").text
    assert "打开案卷" in zh_page and "도시에 열기" in ko_page
    assert "请在命令后写上申请号或公开号" in ko_page  # the text is the asker's, for everyone

    # no language chosen: the one of the page the question was asked on
    au, au_token = as_user("au.examiner")
    asked = au.post(f"/threads/{other_id}/posts", data={"body": "/dossier",
                                                      "csrf_token": au_token},
                    headers={"Accept-Language": "ko-KR,ko;q=0.9"}, follow_redirects=False)
    assert asked.status_code == 303
    process_pending(BotRunner(engine, bots_of(DossierBot()), default_language="ja"), engine)
    assert answers(engine, other_id)[-1][0].body.startswith("뒤에 출원번호나 공개번호를")

    # a plugin's bot does the same through ctx.tr: the documented family bot
    family_id, _ = new_thread(engine, f"/family {JP_APP}", author="cn.examiner")
    process_pending(BotRunner(engine, bots_of(example_plugin.FamilyBot())), engine)
    [(members, _)] = answers(engine, family_id)
    assert members.body == "该同族的成员（您可查看的部分）："
