"""The bot runner: hands posts and dossier events to bots and posts their answers.

Why it is built this way
------------------------
* ``handle`` runs inside the event-log transaction that moves the cursor
  (on SQLite that transaction holds the one write lock).  So it only
  *decides*: which bots the event calls, whether the thread's rate limit
  allows another answer, and it records one ``BotRun`` row per bot, either
  ``pending`` or already final (``limited``, ``skipped``).  A few indexed
  queries, no bot code.
* ``after_commit`` then calls the bots outside any transaction, each in its
  own thread with a deadline, and writes each result in a short transaction
  of its own: the answer post and the row's final status together.
* Never twice: a ``BotRun`` is unique per (bot, post), and an answer is
  written only by the transaction whose conditional ``UPDATE`` moves that
  row out of ``pending``.  Re-reading the log, a second worker or a recovery
  sweep finds the row taken and posts nothing.
* At least once: a ``pending`` row is a durable to-do item.  If the process
  dies after the cursor moved but before the answer was written, a later
  sweep finds the row gone stale and runs the bot again.
* Daemon threads rather than a ``concurrent.futures`` pool: a pool joins its
  threads at interpreter exit, so one bot stuck for good would stop the
  server from shutting down, and N stuck bots would starve a pool of N.  A bot
  still stuck in earlier calls is not started again (those calls time out at
  once), so stuck threads cannot pile up.
* Posting never breaks: the runner starts after the post has committed, and
  every failure ends as a ``BotRun`` status that admins see on /admin/bots.
* Only fresh events (``max_age``, an hour) call bots: a runner deployed on a
  log with history, or back from a long outage, does not answer old questions.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from caseforum import accounts, i18n
from caseforum.authz import ANONYMOUS, Viewer
from caseforum.bots.base import (
    BotAnswer,
    BotError,
    BotEvent,
    BotPost,
    LoadedBot,
    find_invocations,
    load_bots,
)
from caseforum.bots.context import BotContext, read_only_session, reference_rows, thread_info
from caseforum.db import open_session
from caseforum.events import Consumer
from caseforum.forum.notify import notify
from caseforum.forum.service import add_post
from caseforum.forum.text import render_post
from caseforum.forum.view import embed_key
from caseforum.models import (
    Application,
    BotRun,
    Event,
    Office,
    Post,
    Reference,
    Thread,
    User,
    utcnow,
)
from caseforum.models.account import Role

log = logging.getLogger(__name__)

#: bots' users belong to the International Bureau, the one office every deployment has
BOT_OFFICE = "IB"
PENDING = "pending"
#: what a failed bot tells the asker, unless it raised BotError with its own words
GENERIC_FAILURE = "it ran into an error, which the administrators can see"


@dataclass(frozen=True)
class _Job:
    """A pending BotRun to carry out.  ``post_id`` is set for post triggers;
    event triggers store ``-event_id`` as the BotRun's post_id."""

    run_id: int
    bot: str
    kind: str  # post | event
    event_id: int | None
    post_id: int | None = None
    #: the language of the page the post was written on (the event says; a job
    #: picked up again after a crash does not know it)
    language: str = ""


@dataclass(eq=False)
class _Call:
    """One bot call in flight and what came of it."""

    job: _Job
    loaded: LoadedBot | None
    done: threading.Event = field(default_factory=threading.Event)
    answer: BotAnswer | None = None
    threads: list[int] = field(default_factory=list)
    status: str = ""  # set when the call ended without an answer to post
    note: str = ""
    user_message: str = ""
    timed_out: bool = False


@dataclass(frozen=True)
class _Failure:
    event_id: int | None
    author_id: int
    thread_id: int
    post_id: int
    bot: str
    message: str


class _NoAnswer(Exception):
    def __init__(self, status: str, note: str) -> None:
        super().__init__(note)
        self.status = status
        self.note = note


def describe(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` for the admins' page."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    return text[:2000]


def _as_answer(result: Any) -> BotAnswer | None:
    if result is None:
        return None
    if isinstance(result, str):
        result = BotAnswer(result)
    if not isinstance(result, BotAnswer):
        raise TypeError(f"handle returned {type(result).__name__}, not a BotAnswer or None")
    return result.check()


class BotRunner(Consumer):
    """Event-log consumer for ``post.created`` (posts by people) and for dossier
    events that a bot subscribes to (``document.added``…)."""

    name = "bot-runner"

    def __init__(
        self,
        engine: Engine,
        bots: Callable[[], Iterable[Any]],
        *,
        broker: Any = None,
        patterns: Callable[[], list[Any]] | None = None,
        timeout: float = 5.0,
        rate_limit: int = 3,
        rate_window: float = 60.0,
        max_stuck: int = 2,
        max_age: float = 3600.0,
        stale_after: float = 60.0,
        sweep_seconds: float = 30.0,
        default_language: str = i18n.DEFAULT_LANGUAGE,
    ) -> None:
        self.engine = engine
        #: what a bot answers in when the asker chose no language, and for events
        self.default_language = default_language
        self.bots = bots  # a callable, so that a disabled plugin's bots drop out at once
        self.broker = broker
        self.patterns = patterns
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.max_stuck = max_stuck
        self.max_age = max_age
        self.stale_after = stale_after
        self.sweep_seconds = sweep_seconds
        self._jobs: list[_Job] = []
        self._lock = threading.Lock()
        self._stuck: dict[str, int] = defaultdict(int)
        self._next_sweep = 0.0
        self._logged: set[str] = set()

    # Which bots -------------------------------------------------------------

    def load(self) -> list[LoadedBot]:
        loaded, problems = load_bots(self.bots())
        for problem in problems:
            if problem not in self._logged:
                self._logged.add(problem)
                log.error("%s", problem)
        return loaded

    def stuck(self, bot: str) -> int:
        """Calls of ``bot`` that timed out and have not returned yet."""
        with self._lock:
            return self._stuck[bot]

    def _patterns(self) -> list[Any] | None:
        return self.patterns() if self.patterns else None

    # Deciding, inside the cursor's transaction ------------------------------

    def wants(self, event: Event) -> bool:
        if event.kind == "post.created":
            return not event.payload.get("bot")
        if "application_id" not in (event.payload or {}):
            return False
        return any(event.kind in b.triggers.events for b in self.load())

    def handle(self, session: Session, event: Event) -> None:
        self._jobs = []  # jobs of an event whose transaction failed are void
        if event.at < utcnow() - timedelta(seconds=self.max_age):
            return  # after a long outage, or for a new runner reading old history: stay quiet
        loaded = self.load()
        if event.kind == "post.created":
            self._decide_post(session, event, loaded)
        else:
            self._decide_event(session, event, loaded)

    def _bot_user(self, session: Session, name: str) -> User | None:
        return session.exec(select(User).where(User.username == name)).first()

    def _recent_answers(self, session: Session, bot: str, thread_id: int) -> int:
        """The bot's posts in the thread within the window, plus answers on their way."""
        since = utcnow() - timedelta(seconds=self.rate_window)
        pending = session.exec(select(func.count()).select_from(BotRun).where(
            BotRun.bot == bot, BotRun.thread_id == thread_id, BotRun.status == PENDING,
            BotRun.at >= since)).one()
        user = self._bot_user(session, bot)
        if user is None or str(user.role) != "bot":
            return pending
        posted = session.exec(select(func.count()).select_from(Post).where(
            Post.author_id == user.id, Post.thread_id == thread_id,
            Post.created_at >= since)).one()
        return pending + posted

    def _gate(self, session: Session, bot: str, thread: Thread) -> tuple[str, str]:
        """Whether the bot may answer in this thread now: (status, note)."""
        user = self._bot_user(session, bot)
        if user is not None and str(user.role) == "bot" and not user.is_active:
            return "skipped", "the bot's account is disabled"
        if thread.locked:
            return "skipped", "the thread is locked"
        recent = self._recent_answers(session, bot, thread.id or 0)
        if recent >= self.rate_limit:
            return "limited", (f"{recent} answers in this thread in the last "
                               f"{self.rate_window:g} s (limit {self.rate_limit})")
        return PENDING, ""

    def _decide_post(self, session: Session, event: Event, loaded: list[LoadedBot]) -> None:
        post = session.get(Post, event.payload.get("post_id"))
        if post is None or post.hidden:
            return
        thread = session.get(Thread, post.thread_id)
        author = session.get(User, post.author_id)
        if thread is None or author is None or str(author.role) == "bot":
            return
        refs = reference_rows(session, post.id or 0)
        for bot in loaded:
            if not find_invocations(bot.name, bot.triggers, post.body, refs):
                continue
            if session.exec(select(BotRun.id).where(BotRun.bot == bot.name,
                                                    BotRun.post_id == post.id)).first():
                continue  # decided before: the event is being read again
            status, note = self._gate(session, bot.name, thread)
            run = BotRun(bot=bot.name, post_id=post.id or 0, thread_id=thread.id or 0,
                         status=status, error=note)
            session.add(run)
            session.flush()
            if status == PENDING:
                self._jobs.append(_Job(run.id or 0, bot.name, "post", event.id, post.id,
                                       str(event.payload.get("language") or "")))

    def _decide_event(self, session: Session, event: Event, loaded: list[LoadedBot]) -> None:
        bots = [b for b in loaded if event.kind in b.triggers.events]
        threads = referencing_threads(session, event.payload, event.at) if bots else []
        if not threads:
            return
        for bot in bots:
            if session.exec(select(BotRun.id).where(BotRun.bot == bot.name,
                                                    BotRun.post_id == -(event.id or 0))).first():
                continue
            run = BotRun(bot=bot.name, post_id=-(event.id or 0), thread_id=threads[0],
                         status=PENDING)
            session.add(run)
            session.flush()
            self._jobs.append(_Job(run.id or 0, bot.name, "event", event.id))

    # Running, after the commit ----------------------------------------------

    def after_commit(self) -> None:
        jobs, self._jobs = self._jobs, []
        if time.monotonic() >= self._next_sweep:
            jobs += self._stale_jobs(self.timeout + self.stale_after)
        if jobs:
            self.run_jobs(jobs)

    def recover(self, older_than: float | None = None) -> int:
        """Run the bots of ``pending`` rows older than ``older_than`` seconds
        (default: the time limit plus a grace period): work a crash left behind."""
        jobs = self._stale_jobs(self.timeout + self.stale_after if older_than is None
                                else older_than)
        self.run_jobs(jobs)
        return len(jobs)

    def _stale_jobs(self, older_than: float) -> list[_Job]:
        self._next_sweep = time.monotonic() + self.sweep_seconds
        cutoff = utcnow() - timedelta(seconds=older_than)
        with open_session(self.engine) as session:
            rows = session.exec(select(BotRun).where(BotRun.status == PENDING,
                                                     BotRun.at <= cutoff)
                                .order_by(BotRun.id).limit(20)).all()
        jobs = []
        for run in rows:
            if run.post_id > 0:
                jobs.append(_Job(run.id or 0, run.bot, "post", None, run.post_id))
            else:
                jobs.append(_Job(run.id or 0, run.bot, "event", -run.post_id))
        if jobs:
            log.warning("bot runner: %d unanswered bot run(s) left behind; running them again",
                        len(jobs))
        return jobs

    def run_jobs(self, jobs: list[_Job]) -> None:
        """Call the bots side by side, wait at most ``timeout`` for all of them,
        then write each result in its own transaction."""
        if not jobs:
            return
        bots = {b.name: b for b in self.load()}
        calls = [self._start(job, bots.get(job.bot)) for job in jobs]
        deadline = time.monotonic() + self.timeout
        for call in calls:
            if call.done.wait(max(0.0, deadline - time.monotonic())):
                continue
            with self._lock:
                if not call.done.is_set():
                    call.timed_out = True
                    self._stuck[call.job.bot] += 1
                    log.warning("bot %s did not answer within %g s (run %s)",
                                call.job.bot, self.timeout, call.job.run_id)
        failures = [f for f in (self._finish(call) for call in calls) if f is not None]
        self._tell_authors(failures)

    def _start(self, job: _Job, loaded: LoadedBot | None) -> _Call:
        call = _Call(job, loaded)
        if loaded is None:
            call.status, call.note = "skipped", "the bot is no longer registered"
            call.done.set()
            return call
        stuck = self.stuck(loaded.name)
        if stuck >= self.max_stuck:
            call.status = "timeout"
            call.note = f"not started: {stuck} earlier calls of this bot have not returned"
            call.user_message = "it is not responding at the moment"
            call.done.set()
            return call
        threading.Thread(target=self._invoke, args=(call,), name=f"bot-{loaded.name}",
                         daemon=True).start()
        return call

    def _invoke(self, call: _Call) -> None:
        """In the bot's own thread: build the context, call the bot, check the answer."""
        assert call.loaded is not None
        bot = call.loaded.bot
        session = read_only_session(self.engine)
        try:
            ctx = self._context(session, call)
            if call.job.kind == "post":
                result = bot.handle(ctx.post, ctx)
            else:
                result = bot.handle_event(ctx.event, ctx)
            call.answer = _as_answer(result)
            if call.answer is not None:
                render_post(call.answer.text)  # too long or unreadable: fail here, not later
            call.threads = [t.id for t in ctx.threads]
        except _NoAnswer as exc:
            call.status, call.note = exc.status, exc.note
        except BotError as exc:
            call.status, call.note, call.user_message = "error", describe(exc), str(exc)
            log.warning("bot %s declined run %s: %s", call.loaded.name, call.job.run_id, exc)
        except Exception as exc:
            call.status, call.note = "error", describe(exc)
            log.exception("bot %s failed (run %s)", call.loaded.name, call.job.run_id)
        finally:
            try:
                session.rollback()
                session.close()
            except Exception:
                log.exception("bot %s: closing its session failed", call.loaded.name)
            with self._lock:
                if call.timed_out:
                    self._stuck[call.loaded.name] -= 1
                call.done.set()

    def _context(self, session: Session, call: _Call) -> BotContext:
        assert call.loaded is not None
        job = call.job
        if job.kind == "event":
            event = session.get(Event, job.event_id)
            if event is None:
                raise _NoAnswer("skipped", f"event {job.event_id} has left the log")
            threads = [session.get(Thread, t)
                       for t in referencing_threads(session, event.payload, event.at)]
            infos = [thread_info(t) for t in threads if t is not None]
            if not infos:
                raise _NoAnswer("skipped", "no thread references the dossier any more")
            return BotContext(session, viewer=ANONYMOUS, threads=infos,
                              event=BotEvent(id=event.id or 0, kind=event.kind,
                                             payload=dict(event.payload)),
                              patterns=self._patterns(), language=self.default_language)
        post = session.get(Post, job.post_id)
        thread = session.get(Thread, post.thread_id) if post else None
        author = session.get(User, post.author_id) if post else None
        if post is None or post.hidden or thread is None or author is None:
            raise _NoAnswer("skipped", "the post was hidden or removed")
        refs = reference_rows(session, post.id or 0)
        snapshot = BotPost(id=post.id or 0, thread_id=post.thread_id, author_id=post.author_id,
                           author=author.username, author_office=author.office_code,
                           body=post.body, created_at=post.created_at,
                           reply_to_id=post.reply_to_id)
        viewer = Viewer.of(author, session.get(Office, author.office_code))
        return BotContext(
            session, viewer=viewer, post=snapshot, thread=thread_info(thread), references=refs,
            invocations=find_invocations(call.loaded.name, call.loaded.triggers, post.body, refs),
            patterns=self._patterns(),
            # the asker's own choice (the switcher or the settings page), else the
            # language of the page they asked on, else the instance default
            language=i18n.match_language([author.locale])
            or i18n.match_language([job.language]) or self.default_language)

    # Writing the results ----------------------------------------------------

    def _finish(self, call: _Call) -> _Failure | None:
        if call.timed_out:
            status, note = "timeout", f"no answer within {self.timeout:g} s"
            call.user_message = f"it did not answer within {self.timeout:g} seconds"
        elif call.status:
            status, note = call.status, call.note
        elif call.answer is None:
            status, note = "skipped", "the bot had nothing to say"
        else:
            status, note = "answered", ""
        try:
            return self._write(call, status, note)
        except Exception as exc:
            log.exception("bot %s: writing the result of run %s failed",
                          call.job.bot, call.job.run_id)
            call.user_message = ""
            try:
                return self._write(call, "error", f"could not post the answer: {describe(exc)}")
            except Exception:
                log.exception("bot run %s stays pending; a later sweep retries it",
                              call.job.run_id)
                return None

    def _write(self, call: _Call, status: str, note: str) -> _Failure | None:
        job = call.job
        with open_session(self.engine, self.broker) as session:
            claimed = session.exec(  # type: ignore[call-overload]
                update(BotRun).where(BotRun.id == job.run_id, BotRun.status == PENDING)
                .values(status=status, error=note[:2000]))
            if claimed.rowcount != 1:
                session.rollback()
                return None  # done already: by another worker, or before a restart
            run = session.get(BotRun, job.run_id, populate_existing=True)
            assert run is not None
            if status == "answered":
                try:
                    if job.kind == "post":
                        self._post_answer(session, call, run)
                    else:
                        self._post_notes(session, call, run)
                except _NoAnswer as exc:
                    run.status, run.error = exc.status, exc.note
                    call.user_message = GENERIC_FAILURE if exc.status == "error" else ""
            session.add(run)
            session.commit()
            if job.kind != "post" or run.status not in ("error", "timeout"):
                return None
            post = session.get(Post, run.post_id)
            if post is None:
                return None
            return _Failure(event_id=job.event_id, author_id=post.author_id,
                            thread_id=run.thread_id, post_id=run.post_id, bot=run.bot,
                            message=call.user_message or GENERIC_FAILURE)

    def _answering_user(self, session: Session, call: _Call) -> User:
        """The bot's user, created the first time the bot answers."""
        assert call.loaded is not None
        name = call.loaded.name
        user = self._bot_user(session, name)
        if user is None:
            return accounts.create_user(session, username=name, office_code=BOT_OFFICE,
                                        role="bot", password=None,
                                        display_name=call.loaded.display_name)
        if str(user.role) != "bot":
            raise _NoAnswer("error", f"the username {name!r} belongs to a person, not a bot: "
                                     "give the bot another name")
        if not user.is_active:
            raise _NoAnswer("skipped", "the bot's account is disabled")
        return user

    def _post_answer(self, session: Session, call: _Call, run: BotRun) -> None:
        assert call.answer is not None
        post = session.get(Post, run.post_id)
        thread = session.get(Thread, run.thread_id)
        if post is None or post.hidden or thread is None:
            raise _NoAnswer("skipped", "the post was hidden or removed meanwhile")
        if thread.locked:
            raise _NoAnswer("skipped", "the thread was locked meanwhile")
        user = self._answering_user(session, call)
        answer = add_post(session, author=user, thread=thread, body=call.answer.text,
                          reply_to_id=post.id, embeds=call.answer.embeds,
                          patterns=self._patterns())
        run.answer_post_id = answer.id

    def _post_notes(self, session: Session, call: _Call, run: BotRun) -> None:
        """An event's answer goes to every thread that references the dossier,
        each within its own rate limit."""
        assert call.answer is not None
        user = self._answering_user(session, call)
        posted: list[int] = []
        held: list[str] = []
        for thread_id in call.threads:
            thread = session.get(Thread, thread_id)
            if thread is None:
                continue
            status, _ = self._gate(session, run.bot, thread)
            if status != PENDING:
                held.append(f"{status} in thread {thread_id}")
                continue
            note = add_post(session, author=user, thread=thread, body=call.answer.text,
                            embeds=call.answer.embeds, patterns=self._patterns())
            posted.append(thread_id)
            if run.answer_post_id is None:
                run.answer_post_id, run.thread_id = note.id, thread_id
        if not posted:
            limited = any(h.startswith("limited") for h in held)
            raise _NoAnswer("limited" if limited else "skipped", "; ".join(held) or "no thread")
        run.error = "; ".join([f"posted in thread{'s' if len(posted) > 1 else ''} "
                               + ", ".join(map(str, posted)), *held])

    def _tell_authors(self, failures: list[_Failure]) -> None:
        """One short notice per failed post to its author, naming each bot that failed."""
        grouped: dict[tuple[int, int], list[_Failure]] = defaultdict(list)
        for failure in failures:
            grouped[(failure.post_id, failure.author_id)].append(failure)
        for (post_id, author_id), group in grouped.items():
            first = group[0]
            text = "; ".join(f"the {f.bot} bot could not answer: {f.message}" for f in group)
            try:
                with open_session(self.engine, self.broker) as session:
                    event = _post_event(session, first.event_id, first.thread_id, post_id)
                    if event is None:
                        continue
                    notify(session, user_id=author_id, event=event, kind="bot_error",
                           text=text[:1].upper() + text[1:], thread_id=first.thread_id,
                           post_id=post_id, link=f"/threads/{first.thread_id}#post-{post_id}")
                    session.commit()
            except Exception:
                log.exception("could not tell user %s that a bot failed", author_id)


def _post_event(session: Session, event_id: int | None, thread_id: int,
                post_id: int) -> Event | None:
    """The post.created event of a post (notices are keyed by event)."""
    if event_id is not None:
        return session.get(Event, event_id)
    for event in session.exec(select(Event).where(
            Event.kind == "post.created", Event.subject_type == "thread",
            Event.subject_id == str(thread_id)).order_by(Event.id.desc()).limit(500)):  # type: ignore[union-attr]
        if event.payload.get("post_id") == post_id:
            return event
    return None


def referencing_threads(session: Session, payload: dict[str, Any],
                        until: datetime | None = None) -> list[int]:
    """Threads whose visible posts mention the dossier of ``payload["application_id"]``,
    by application or publication number, or show it in a bot's block (a thread that
    only asked ``/dossier N`` has no reference of its own: numbers on command lines
    are not cards); with ``until``, only mentions made by then (a document that was
    there before the discussion began is not news to it)."""
    app = session.get(Application, payload.get("application_id"))
    if app is None:
        return []
    clauses = [(Reference.kind == "application") & (Reference.office_code == app.office_code)
               & (Reference.number == app.number)]
    keys = {("application", app.office_code, app.number)}
    if app.publication_number:
        clauses.append((Reference.kind == "publication")
                       & (Reference.office_code == app.publication_number[:2])
                       & (Reference.number == app.publication_number[2:]))
        keys.add(("publication", app.publication_number[:2], app.publication_number[2:]))
    query = select(Post.thread_id).join(Reference, Reference.post_id == Post.id).where(
        or_(*clauses), Post.hidden.is_(False))  # type: ignore[attr-defined]
    # bots' posts whose blocks may name it: the JSON text narrows, embed_key decides
    blocks = select(Post.thread_id, Post.embeds).join(User, User.id == Post.author_id).where(
        User.role == Role.bot, Post.hidden.is_(False),  # type: ignore[attr-defined]
        or_(*(cast(Post.embeds, String).contains(number, autoescape=True)
              for _, _, number in keys)))
    if until is not None:
        query = query.where(Post.created_at <= until)
        blocks = blocks.where(Post.created_at <= until)
    threads = set(session.exec(query.distinct()))
    threads.update(thread_id for thread_id, embeds in session.exec(blocks)
                   if any(embed_key(spec) in keys for spec in embeds or ()))
    return sorted(threads)
