"""Forum benchmark: a 200-post thread page with 20 dossier cards, at 1 and 16 clients,
against a bare anchor rendering the same HTML in the same run.  (Live fan-out to
websocket watchers is ``benchmarks/fanout_bench.py``, with its own anchor.)

Builds a throw-away data folder with a SQLite database (WAL): ``init`` and the
demo loader, 20 dossiers in 10 two-office families (each with documents and
citations, so every card has a family size, latest documents and a citation
count), a category open to every office and one thread of 200 posts by several
demo examiners whose bodies mention those 20 numbers (as application or
publication numbers), and 16 more examiners of the viewer's office (one per
concurrent client).

Then it starts two servers, each one uvicorn worker in its own process on a free
loopback port: CaseForum (``python -m uvicorn --factory caseforum.app:create_app``)
and the bare anchor (``bare_app`` below: a Starlette route reading the same SQLite
file with raw ``sqlite3`` queries and rendering the same posts and cards in one Jinja
loop), and measures, alternating between the two, ``GET /threads/{id}`` as
``kr.examiner`` logged in through the real form, with one client and with
``--clients`` (16) concurrent clients, and the anchor's same page: p50/p95/p99/max,
requests/s, the server's CPU per request and the ratio CaseForum / bare (goal: 0.40
or more).  Then ``GET /api/v1/threads/{id}`` with a bearer token, one client.

    .venv/bin/python benchmarks/forum_bench.py                 # page at 1 and 16 clients
    .venv/bin/python benchmarks/forum_bench.py --quick         # 60 requests per measurement
    .venv/bin/python benchmarks/forum_bench.py --profile       # py-spy on the server

It prints one ``SUMMARY {json}`` line per ratio row for ``benchmarks/run_all.py``.
``--profile`` attaches py-spy (``pip install py-spy``) to the CaseForum server during
the page phase and prints where its CPU time goes; take the latency numbers from
a run without it.

Only loopback traffic; everything is written inside a temporary folder that is
removed at the end.  The servers are terminated at the end, also on errors, Ctrl-C
and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    ConnectionPool,
    ServerProcess,
    demo_instance,
    free_port,
    pct,
    summary,
    wait_for_consumers,
)

SECRET = "forum-bench-secret-key-0123456789"
DEMO_PASSWORD = "caseforum-demo"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
CARD_RE = re.compile(r'class="dossier-card" aria-label="Dossier ([^"]+)"')
AUTHORS = ("jp.examiner", "kr.examiner", "cn.examiner", "au.examiner", "gb.examiner")
PAGE_VIEWER = "kr.examiner"  # an accessing office: sees every dossier, hence 20 cards
READERS = 16  # more examiners of PAGE_VIEWER's office: one per concurrent page client


# Data -------------------------------------------------------------------------------------


@dataclass
class Dossier:
    office: str
    application: str  # as filed, e.g. "16/900,321"
    publication: str  # e.g. "US 2019/0900321 A1"
    filing: date
    published: date
    mention: str = ""  # how the posts write it
    priority: tuple[str, str, date] | None = None


def _cn_application(serial: int) -> str:
    """A CN application number with a valid check digit (found by the parser)."""
    from caseforum.numbers import parse_application_number

    body = f"2018109{serial:05d}"
    for check in "0123456789X":
        try:
            parse_application_number(f"{body}.{check}", office="CN")
            return f"{body}.{check}"
        except ValueError:
            continue
    raise RuntimeError(f"no valid check digit for CN {body}")


def dossier_plan() -> list[Dossier]:
    """20 dossiers: US members claim JP priorities, KR members CN ones (10 families)."""
    plan: list[Dossier] = []
    for k in range(5):
        jp = Dossier("JP", f"2018-{900321 + k}", f"JP 2019-{900321 + k} A",
                     date(2018, 3, 1) + timedelta(days=k), date(2019, 9, 5) + timedelta(days=k))
        us = Dossier("US", f"16/{900 + k:03d},{321 + k:03d}", f"US 2019/{900321 + k:07d} A1",
                     date(2019, 2, 20) + timedelta(days=k), date(2019, 8, 22) + timedelta(days=k),
                     priority=("JP", jp.application, jp.filing))
        cn = Dossier("CN", _cn_application(321 + k), f"CN {109003210 + k} A",
                     date(2018, 4, 2) + timedelta(days=k), date(2019, 10, 8) + timedelta(days=k))
        kr = Dossier("KR", f"10-2018-{900321 + k:07d}", f"KR 10-2019-{900321 + k:07d} A",
                     date(2019, 3, 25) + timedelta(days=k), date(2019, 11, 4) + timedelta(days=k),
                     priority=("CN", cn.application, cn.filing))
        plan += [jp, us, cn, kr]
    for i, d in enumerate(plan):
        # half as application numbers, half as publication numbers (KR publications
        # have no recognised free-text form, so KR is always the application number)
        if d.office == "KR" or i % 2 == 0:
            d.mention = f"{d.office} {d.application}"
        else:
            d.mention = d.publication
    return plan


POST_TEMPLATES = (
    "**Re {a}**: our search report for this family cites two *X* documents against "
    "claims 1-{n}. The closest art is also cited in {b}; see the written opinion, "
    "point {p}.\n\n- claim 1: anticipated by D1\n- claim {n}: inventive step over D1 + D2\n\n"
    "Has anyone looked at the amended claims yet?",
    "We reached the same result for {a}. The applicant argued the ratio in claim {n} is "
    "not disclosed, but D2 (paragraph [00{p}5]) gives it. In {b} the examiner accepted "
    "the amendment; I am not convinced it overcomes D2.",
    "> the ratio in claim {n} is not disclosed\n\nI would read it the other way. Compare "
    "{a} with {b}: the fin pitch is the same, only the coating differs. `F28F 1/32` "
    "and the FI terms give the same hits in our search.",
    "Short note for the family of {a}: the PPH request was filed last week, based on the "
    "allowed claims of {b}. We will take it up in the next action (about {p} weeks).",
)


def build(data_dir: Path, log: Any, database_url: str | None = None) -> dict[str, Any]:
    """The database for the run (SQLite in ``data_dir``, or the empty PostgreSQL database
    at ``database_url``); returns the thread id, the API token and counts."""
    from sqlmodel import select

    from caseforum import accounts
    from caseforum.app import build_doc_types
    from caseforum.db import open_session
    from caseforum.dossiers import service as dossiers
    from caseforum.dossiers.schemas import CitationIn, DossierIn, PriorityIn
    from caseforum.forum import service as forum
    from caseforum.models import Application, Post, User
    from caseforum.storage import FileStore

    t0 = time.perf_counter()
    settings, engine, host = demo_instance(data_dir, SECRET, database_url)
    registry = build_doc_types(host)
    log(f"  init + demo data: {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    plan = dossier_plan()
    store = FileStore(settings.storage_dir)
    with open_session(engine) as session:
        for i, d in enumerate(plan):
            data = DossierIn(
                office=d.office, application_number=d.application, filing_date=d.filing,
                publication_number=d.publication, publication_date=d.published,
                title=f"Heat exchanger with layered fins, variant {i + 1}",
                applicants=[f"Bench Industries {d.office} Ltd.", "Example Thermal Co."],
                ipc=["F28F 1/32"],
                priorities=[PriorityIn(office=p[0], number=p[1], date=p[2])
                            for p in ([d.priority] if d.priority else [])])
            app, _ = dossiers.upsert_dossier(session, data=data, actor_id=None)
            docs = []
            for j, (code, days) in enumerate((("CLM", 0), ("SRPT", 200), ("CTNF", 400))):
                meta = dossiers.DocumentMeta(code=code, date=d.filing + timedelta(days=days),
                                             visibility="offices")
                text = f"{code} of {d.office} {d.application}\n" + "claim wherein " * 200
                doc, _ = dossiers.add_document(
                    session, store, app=app, meta=meta, stream=io.BytesIO(text.encode()),
                    filename=f"{code.lower()}-{j}.txt", max_bytes=1 << 20, registry=registry,
                    actor_id=None)
                docs.append(doc)
            for c in range(2):
                dossiers.add_citation(session, app=app, actor_id=None, data=CitationIn(
                    cited=f"WO 2015/{123450 + i * 3 + c} A1", category="X" if c == 0 else "Y",
                    claims="1-5", phase="search", document_id=docs[1].id))
        session.commit()
        stored = {(a.office_code, a.publication_number) for a in session.exec(select(Application))}
    log(f"  20 dossiers with documents and citations: {time.perf_counter() - t1:.1f} s")

    t2 = time.perf_counter()
    patterns = host.reference_patterns()
    with open_session(engine) as session:
        users = {u.username: u for u in session.exec(select(User))}
        category = forum.create_category(session, name="Benchmark cooling families",
                                         description="Open to every office.", offices=[])
        thread = None
        first_post = None
        for i in range(200):
            a, b = plan[i % 20], plan[(i * 7 + 3) % 20]
            body = POST_TEMPLATES[i % len(POST_TEMPLATES)].format(
                a=a.mention, b=b.mention, n=2 + i % 9, p=1 + i % 9)
            author = users[AUTHORS[i % len(AUTHORS)]]
            if thread is None:
                thread, first_post = forum.create_thread(
                    session, author=author, category=category,
                    title="Cooling fin families: who examined what", body=body,
                    patterns=patterns)
            else:
                reply = first_post.id if i % 10 == 5 else None
                forum.add_post(session, author=author, thread=thread, body=body,
                               reply_to_id=reply, patterns=patterns)
        session.commit()
        assert thread is not None
        thread_id = thread.id
        posts = len(session.exec(select(Post.id).where(Post.thread_id == thread_id)).all())
    log(f"  thread of {posts} posts: {time.perf_counter() - t2:.1f} s")

    t3 = time.perf_counter()
    with open_session(engine) as session:
        for i in range(READERS):  # the page's concurrent clients: examiners of one office
            accounts.create_user(session, username=f"{PAGE_VIEWER}{i:02d}",
                                 office_code=PAGE_VIEWER[:2].upper(), role="examiner",
                                 password=DEMO_PASSWORD, display_name=f"Bench reader {i}")
        viewer = session.exec(select(User).where(User.username == PAGE_VIEWER)).one()
        _, api_token = accounts.create_token(session, user=viewer,
                                             scopes=["forum", "dossiers:read"],
                                             name="forum benchmark")
        session.commit()
    log(f"  {READERS} readers and an API token: {time.perf_counter() - t3:.1f} s")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    missing = [d.publication for d in plan
               if not any(pub.startswith(d.office) for _, pub in stored)]
    if missing:
        raise RuntimeError(f"dossiers missing: {missing}")
    return {"thread_id": thread_id, "posts": posts, "api_token": api_token}


# Bare anchor ------------------------------------------------------------------------------
#
# The ceiling the thread page is measured against: the same HTML (the posts with their
# markers turned into links and the 20 dossiers' cards under the posts that mention them)
# from a bare Starlette route under the same uvicorn, reading the same SQLite file with
# raw sqlite3 queries and rendering one Jinja loop.  No log-in, no sessions, no plugins,
# no per-viewer rules beyond the one visibility filter the cards need.

BARE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · CaseForum</title>
<link rel="stylesheet" href="/static/css/app.css"></head>
<body><main id="main"><h1>{{ title }}</h1>
<div id="posts" class="posts" aria-live="polite">
{% for p in posts %}
<article id="post-{{ p.id }}" class="post" data-author-id="{{ p.author_id }}">
  <header class="post-head">
    <span class="office-badge" title="{{ p.office_name }}">{{ p.office_code }}</span>
    <strong>{{ p.label }}</strong>
    <a class="muted permalink" href="/threads/{{ p.thread_id }}#post-{{ p.id }}"><time datetime="{{ p.created_at }}" title="{{ p.created_at }}">{{ p.created_at }}</time></a>
    {% if p.reply_to_id %}<a class="muted" href="#post-{{ p.reply_to_id }}">↩ reply</a>{% endif %}
  </header>
  <div class="post-body">{{ p.html }}</div>
  {% for full, c in p.cards %}{% if full %}
<aside class="dossier-card" aria-label="Dossier {{ c.office_code }} {{ c.display_number }}">
  <header><span class="office-badge">{{ c.office_code }}</span> <a href="/dossiers/{{ c.office_code }}/{{ c.number }}">{{ c.display_number }}</a> <span class="muted">filed {{ c.filing_date }}</span></header>
  <p class="card-title">{{ c.title }}</p>
  <p class="muted">{{ c.applicants[:2] | join("; ") }}</p>
  <p class="card-facts"><span>family of {{ c.family_size }}</span> · <span>{{ c.citation_count }} citation{{ "" if c.citation_count == 1 else "s" }}</span></p>
  {% if c.latest %}<ul class="card-docs">{% for d in c.latest %}<li><a href="/documents/{{ d.id }}"><code>{{ d.code }}</code> {{ d.date }}</a></li>{% endfor %}</ul>{% endif %}
  <a class="card-open" href="/dossiers/{{ c.office_code }}/{{ c.number }}">Open dossier</a>
</aside>{% else %}
<p class="dossier-ref"><span class="office-badge">{{ c.office_code }}</span> <a href="/dossiers/{{ c.office_code }}/{{ c.number }}">{{ c.display_number }}</a> <span class="dossier-ref-title">{{ c.title }}</span></p>{% endif %}
  {% endfor %}
  <footer class="post-actions"><span class="reactions">
  {% for key, emoji in reactions.items() %}{% set n = p.reactions.get(key, 0) %}
    <form method="post" action="/posts/{{ p.id }}/react/{{ key }}" class="inline" hx-post="/posts/{{ p.id }}/react/{{ key }}" hx-swap="none"><input type="hidden" name="csrf_token" value="{{ csrf_token }}"><button type="submit" class="reaction" aria-pressed="false" title="{{ key }}">{{ emoji }}{% if n %} <span class="n">{{ n }}</span>{% endif %}</button></form>
  {% endfor %}</span>
    <a href="#composer" data-reply-to="{{ p.id }}" data-quote="{{ p.body[:500] }}" class="reply-link">Reply</a>
    <a href="/posts/{{ p.id }}/edit" class="author-only" data-author="{{ p.author_id }}" hidden>Edit</a>
    <details class="inline flag"><summary>Flag</summary>
      <form method="post" action="/posts/{{ p.id }}/flag" class="row-form"><input type="hidden" name="csrf_token" value="{{ csrf_token }}"><label>Why? <input name="reason" required maxlength="500"></label><button type="submit">Flag for moderators</button></form>
    </details>
  </footer>
</article>
{% endfor %}
</div></main></body></html>
"""  # noqa: E501  (the markup of _post.html and dossier_card.html, one element a line)
BARE_CSRF_TOKEN = "0123456789abcdef" * 4
BARE_MARKER_RE = re.compile(r'<span data-ref="(\d+)">(.*?)</span>')


def bare_app() -> Any:
    """The bare anchor (``uvicorn --factory forum_bench:bare_app``); the database and the
    viewer's office come from ``BARE_DB`` (the SQLite file, or a PostgreSQL URL) and
    ``BARE_OFFICE``."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    return Starlette(routes=[Route("/threads/{thread_id:int}", bare_thread_page()),
                             Route("/healthz", lambda r: HTMLResponse("ok"))])


def bare_thread_page() -> Any:
    """The anchor's thread page route: raw queries (one text of SQL for SQLite and
    PostgreSQL) and one Jinja loop."""
    import json

    from jinja2 import Environment
    from markupsafe import Markup
    from starlette.responses import HTMLResponse

    db, office = os.environ["BARE_DB"], os.environ.get("BARE_OFFICE", "KR")
    env = Environment(autoescape=True, auto_reload=False)
    template = env.from_string(BARE_TEMPLATE)
    # SQLite: a connection per thread as before; PostgreSQL: as many as CaseForum's pool
    pool = ConnectionPool(db, size=8 if db.startswith("postgresql") else 64)
    reactions = {"+1": "+1", "agree": "✓ agree", "question": "? question", "seen": "seen"}

    def marks(n: int) -> str:
        return ",".join("?" * n)

    def page(request: Any) -> HTMLResponse:
        with pool.connection() as c:
            return render(c, request)

    def render(c: Any, request: Any) -> HTMLResponse:
        thread_id = int(request.path_params["thread_id"])
        title = c.execute("SELECT title FROM thread WHERE id = ?", (thread_id,)).fetchone()[0]
        posts = [dict(zip(("id", "thread_id", "author_id", "reply_to_id", "body", "html",
                           "created_at", "label", "office_code", "office_name"), row,
                          strict=True))
                 for row in c.execute(
                     "SELECT p.id, p.thread_id, p.author_id, p.reply_to_id, p.body, p.html, "
                     "p.created_at, coalesce(nullif(u.display_name, ''), u.username), "
                     "u.office_code, o.name FROM post p JOIN \"user\" u ON u.id = p.author_id "
                     "JOIN office o ON o.code = u.office_code WHERE p.thread_id = ? "
                     "AND NOT p.hidden ORDER BY p.id LIMIT 200", (thread_id,))]
        ids = [p["id"] for p in posts]
        refs: dict[int, dict[int, tuple[str, str, str]]] = defaultdict(dict)
        for post_id, pos, kind, off, number in c.execute(
                f'SELECT post_id, position, kind, office_code, number FROM "reference" '
                f"WHERE post_id IN ({marks(len(ids))})", ids):
            refs[post_id][pos] = (kind, off, number)
        keys = {k for r in refs.values() for k in r.values()}
        numbers = [n for kind, _, n in keys if kind == "application"]
        pubs = [o + n for kind, o, n in keys if kind != "application"]
        cols = ("id", "office_code", "number", "display_number", "filing_date",
                "publication_number", "title", "applicants", "family_id")
        apps = [dict(zip(cols, row, strict=True)) for row in c.execute(
            f"SELECT {', '.join(cols)} FROM application WHERE number IN ({marks(len(numbers))}) "
            f"OR publication_number IN ({marks(len(pubs))})", numbers + pubs)]
        by_key: dict[tuple[str, str, str], dict] = {}
        for a in apps:
            if isinstance(a["applicants"], str):  # SQLite; PostgreSQL's json is read
                a["applicants"] = json.loads(a["applicants"])
            by_key[("application", a["office_code"], a["number"])] = a
            pub = a["publication_number"]
            by_key[("publication", pub[:2], pub[2:])] = a
        app_ids = [a["id"] for a in apps]
        families = [a["family_id"] for a in apps if a["family_id"] is not None]
        sizes = dict(c.execute(
            f"SELECT family_id, count(*) FROM application WHERE family_id IN "
            f"({marks(len(families))}) GROUP BY family_id", families))
        docs: dict[int, list[dict]] = defaultdict(list)
        visible: set[int] = set()
        for doc_id, app_id, code, day in c.execute(
                f"SELECT id, application_id, code, date FROM document WHERE application_id "
                f"IN ({marks(len(app_ids))}) AND (visibility != 'restricted' OR id IN "
                f"(SELECT document_id FROM document_office WHERE office_code = ?)) "
                f"ORDER BY date DESC, id DESC", [*app_ids, office]):
            docs[app_id].append({"id": doc_id, "code": code, "date": day})
            visible.add(doc_id)
        cites: dict[int, int] = defaultdict(int)
        for app_id, doc_id in c.execute(
                f"SELECT application_id, document_id FROM citation WHERE application_id IN "
                f"({marks(len(app_ids))})", app_ids):
            if doc_id is None or doc_id in visible:
                cites[app_id] += 1
        for a in apps:
            a["family_size"] = sizes.get(a["family_id"], 1)
            a["citation_count"] = cites[a["id"]]
            a["latest"] = docs[a["id"]][:3]
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for post_id, emoji in c.execute(
                f"SELECT post_id, emoji FROM reaction WHERE post_id IN ({marks(len(ids))})", ids):
            counts[post_id][emoji] = counts[post_id].get(emoji, 0) + 1
        carded: set[int] = set()  # a dossier's card once per page, a one-line reference after
        for p in posts:
            cards: list[tuple[bool, dict]] = []
            where = refs[p["id"]]

            def link(m: re.Match[str], where: dict = where, cards: list = cards) -> str:
                a = by_key.get(where.get(int(m.group(1)), ("", "", "")))
                if a is None:
                    return m.group(2)
                if all(a is not c for _, c in cards):
                    cards.append((a["id"] not in carded, a))
                    carded.add(a["id"])
                return f'<a class="ref" href="/dossiers/{a["office_code"]}/{a["number"]}">' \
                       f"{m.group(2)}</a>"

            p["html"] = Markup(BARE_MARKER_RE.sub(link, p["html"]))
            p["cards"] = cards
            p["reactions"] = counts[p["id"]]
        # a session's token in every form, as the page has (a fixed one: no session here)
        return HTMLResponse(template.render(title=title, posts=posts, reactions=reactions,
                                            csrf_token=BARE_CSRF_TOKEN))

    return page


# Server --------------------------------------------------------------------------------



class Server(ServerProcess):
    """``python -m uvicorn --factory caseforum.app:create_app`` in its own process."""

    def __init__(self, data_dir: Path, workdir: Path, bare: bool = False) -> None:
        """``bare``: the anchor (``bare_app`` above) instead of CaseForum, under the
        same uvicorn settings."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        env.update(CASEFORUM_DATA_DIR=str(data_dir), CASEFORUM_SECRET_KEY=SECRET,
                   PYTHONUNBUFFERED="1", BARE_DB=str(data_dir / "caseforum.db"),
                   BARE_OFFICE=PAGE_VIEWER[:2].upper())
        factory = ["--app-dir", str(Path(__file__).resolve().parent), "forum_bench:bare_app"] \
            if bare else ["caseforum.app:create_app"]
        self.spawn([sys.executable, "-m", "uvicorn", "--factory", *factory,
                    "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                    "--no-access-log"],
                   env=env, workdir=workdir, log_name="bare.log" if bare else "server.log")

    def rss_mb(self) -> float | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None



class Profiler:
    """py-spy attached to the server for one phase (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--gil",
             "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # let it attach
        if self.proc.poll() is not None:
            raise RuntimeError("py-spy failed: " + self.proc.stderr.read().decode()[-500:])

    def stop(self) -> Path:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.out


# Measuring ------------------------------------------------------------------------------


def login(client: httpx.Client, username: str) -> str:
    """Log in through the form; returns the session's CSRF token."""
    token = CSRF_RE.search(client.get("/login").text)
    assert token, "no CSRF token on the login page"
    r = client.post("/login", data={"username": username, "password": DEMO_PASSWORD,
                                    "csrf_token": token.group(1)})
    if r.status_code != 303:
        raise RuntimeError(f"log-in of {username} failed: {r.status_code} {r.text[:200]}")
    page = client.get("/")
    found = CSRF_RE.search(page.text)
    assert found, "no CSRF token after log-in"
    return found.group(1)


@dataclass
class Timing:
    name: str
    times: list[float] = field(default_factory=list)  # seconds
    errors: int = 0
    wall: float = 0.0
    size: int = 0
    note: str = ""
    cpu: float | None = None  # server CPU seconds over the timed requests

    def row(self) -> str:
        ms = [t * 1000 for t in self.times]
        n = len(self.times) + self.errors
        rate = len(self.times) / self.wall if self.wall else float("nan")
        cpu = f"{self.cpu / n * 1000:.0f}" if self.cpu is not None and n else "n/a"
        return (f"| {self.name} | {n} | {self.errors} | "
                f"{pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {pct(ms, 99):.1f} | "
                f"{max(ms) if ms else float('nan'):.1f} | {rate:.1f} | {cpu} |")


def time_requests(client: httpx.Client, server: Server, name: str, path: str, n: int,
                  max_seconds: float, check: Any) -> Timing:
    result = Timing(name)
    for _ in range(5):  # warm-up: template compilation, statement cache, page cache
        client.get(path)
    cpu0 = server.cpu_seconds()
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path)
        took = time.perf_counter() - t
        if r.status_code == 200:
            result.times.append(took)
            result.size = len(r.content)
        else:
            result.errors += 1
        if time.perf_counter() - start > max_seconds:
            break
    result.wall = time.perf_counter() - start
    cpu1 = server.cpu_seconds()
    if cpu0 is not None and cpu1 is not None:
        result.cpu = cpu1 - cpu0
    result.note = check(r)
    return result


def time_concurrent(clients: list[httpx.Client], server: Server, name: str, path: str,
                    n: int, max_seconds: float) -> Timing:
    """``n`` requests in all from ``len(clients)`` threads, each with its own connection,
    back to back; requests/s is the successful ones over the wall time."""
    import threading

    result = Timing(name)
    lock = threading.Lock()
    left = [n]

    def worker(client: httpx.Client) -> None:
        while True:
            with lock:
                if left[0] <= 0 or time.perf_counter() - start > max_seconds:
                    return
                left[0] -= 1
            t = time.perf_counter()
            try:
                r = client.get(path)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            took = time.perf_counter() - t
            with lock:
                if ok:
                    result.times.append(took)
                    result.size = len(r.content)
                else:
                    result.errors += 1

    for client in clients:  # warm-up: templates, statement cache, one connection each
        client.get(path)
    cpu0 = server.cpu_seconds()
    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall = time.perf_counter() - start
    cpu1 = server.cpu_seconds()
    if cpu0 is not None and cpu1 is not None:
        result.cpu = cpu1 - cpu0
    return result


def rate(t: Timing) -> float:
    return len(t.times) / t.wall if t.wall else float("nan")


def page_phase(base: str, server: Server, info: dict[str, Any], args: argparse.Namespace,
               log: Any, bare: Server | None = None) -> tuple[list[Timing], dict[str, Any]]:
    """The thread page at 1 and ``--clients`` clients, CaseForum and (when given) the bare
    anchor alternately, then the thread API at one client."""
    thread_id = info["thread_id"]
    path = f"/threads/{thread_id}"
    facts: dict[str, Any] = {"pairs": []}
    clients = [httpx.Client(base_url=base, timeout=60, follow_redirects=False)
               for _ in range(max(1, args.clients))]
    bare_clients = [httpx.Client(base_url=bare.url, timeout=60) for _ in clients] if bare else []
    try:
        login(clients[0], PAGE_VIEWER)
        for i, c in enumerate(clients[1:]):  # other examiners of the same office
            login(c, f"{PAGE_VIEWER}{i % READERS:02d}")
        first = clients[0].get(path)
        first.raise_for_status()
        cards = CARD_RE.findall(first.text)
        facts["posts_on_page"] = first.text.count('id="post-')
        facts["cards_on_page"] = len(cards)
        facts["distinct_cards"] = len(set(cards))
        facts["page_kb"] = len(first.content) / 1024
        facts["cards_kb"] = sum(len(m) for m in re.findall(
            r'<aside class="dossier-card".*?</aside>', first.text, re.S)) / 1024
        log(f"  thread page: {facts['posts_on_page']} posts, {len(cards)} cards "
            f"({len(set(cards))} distinct), {facts['page_kb']:.0f} kB")
        if bare:
            anchor = bare_clients[0].get(path)
            anchor.raise_for_status()
            bare_cards = CARD_RE.findall(anchor.text)
            facts["bare_kb"] = len(anchor.content) / 1024
            bare_posts = anchor.text.count('id="post-')
            log(f"  bare anchor: {bare_posts} posts, {len(bare_cards)} "
                f"cards ({len(set(bare_cards))} distinct), {facts['bare_kb']:.0f} kB")
            if sorted(bare_cards) != sorted(cards):
                raise RuntimeError("the bare anchor's cards differ from CaseForum's")
        timings = []
        for n_clients in sorted({1, max(1, args.clients)}):
            n = args.requests if n_clients == 1 else args.requests * 2
            cf = time_concurrent(clients[:n_clients], server,
                                 f"page GET /threads/{{id}}, {n_clients} client(s)", path, n,
                                 args.max_seconds)
            log("  " + cf.row())
            timings.append(cf)
            if bare:
                b = time_concurrent(bare_clients[:n_clients], bare,
                                    f"bare anchor, same HTML, {n_clients} client(s)", path, n,
                                    args.max_seconds)
                log("  " + b.row())
                timings.append(b)
                facts["pairs"].append((n_clients, cf, b))
    finally:
        for c in clients + bare_clients:
            c.close()
    headers = {"Authorization": f"Bearer {info['api_token']}"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as api_client:
        body = api_client.get(f"/api/v1/threads/{thread_id}")
        body.raise_for_status()
        data = body.json()
        facts["api_posts"] = len(data.get("posts") or [])
        facts["api_cards"] = sum(len(p["cards"]) for p in data.get("posts") or [])
        facts["api_kb"] = len(body.content) / 1024

        def api_check(r: httpx.Response) -> str:
            return f"{len(r.json().get('posts') or [])} posts"

        api = time_requests(api_client, server, "API GET /api/v1/threads/{id} (bearer)",
                            f"/api/v1/threads/{thread_id}", args.requests, args.max_seconds,
                            api_check)
    log("  " + api.row())
    return [*timings, api], facts


# Profile summary ------------------------------------------------------------------------


IDLE = ("Condition.wait (threading.py", "Event.wait (threading.py", "select (selectors.py")


def _where(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``path/file.py`` (py-spy paths are relative to sys.path)."""
    return frame.rsplit("(", 1)[-1].rstrip(")").rsplit(":", 1)[0]


def _bucket(frame: str) -> str:
    where = _where(frame)
    for key, name in (("caseforum/", "caseforum (app code)"),
                      ("asyncio/runners", "event loop (uvloop C code, I/O)"),
                      ("sqlalchemy/", "SQLAlchemy"), ("sqlmodel/", "SQLAlchemy"),
                      ("jinja2/", "Jinja2"), ("markupsafe/", "Jinja2"),
                      ("pydantic", "pydantic"), ("websockets/", "websockets"),
                      ("uvicorn/", "uvicorn"), ("starlette/", "Starlette/FastAPI"),
                      ("fastapi/", "Starlette/FastAPI"), ("anyio/", "threads (anyio)"),
                      ("threading.py", "threads (anyio)"), ("concurrent/", "threads (anyio)"),
                      ("asyncio/", "asyncio"), ("json/", "json"), ("nh3", "markdown/nh3"),
                      ("markdown", "markdown/nh3"), ("<frozen", "import")):
        if where.startswith(key) or f"/{key}" in where:
            return name
    return "other"


def _func(frame: str) -> str:
    """The frame without its line number."""
    return re.sub(r":\d+\)$", ")", frame)


def summarise_profile(path: Path, title: str, log: Any, top: int = 16) -> None:
    if not path.exists():
        log(f"  (no profile written for {title})")
        return
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1].startswith(IDLE):
            idle += n
            continue
        total += n
        leaf[_func(frames[-1])] += n
        buckets[_bucket(frames[-1])] += n
        for f in {_func(f) for f in frames}:
            if _where(f).startswith("caseforum/"):
                inclusive[f] += n
    if not total:
        log(f"  (empty profile for {title})")
        return
    log(f"\n### Profile: {title}\n")
    log(f"{total} samples of the thread holding the GIL (py-spy --gil, 200 Hz); "
        f"{idle} samples in waits left out.\n")
    log("Innermost frame by library (share of samples):\n")
    for name, n in buckets.most_common():
        log(f"- {name}: {100 * n / total:.0f} %")
    log("\nApplication functions, inclusive (share of samples with the function on the "
        "stack):\n")
    for name, n in inclusive.most_common(top):
        log(f"- {100 * n / total:5.1f} %  {name}")
    log("\nHottest leaf functions:\n")
    for name, n in leaf.most_common(top):
        log(f"- {100 * n / total:5.1f} %  {name}")


# Main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per endpoint in the thread-page phase")
    parser.add_argument("--max-seconds", type=float, default=60,
                        help="stop a request phase after this long")
    parser.add_argument("--clients", type=int, default=16,
                        help="concurrent clients of the second thread-page measurement")
    parser.add_argument("--no-bare", action="store_true",
                        help="leave out the bare anchor (no ratio)")
    parser.add_argument("--quick", action="store_true",
                        help="at most 60 requests per measurement (make bench BENCH_ARGS=--quick)")
    parser.add_argument("--profile", action="store_true",
                        help="attach py-spy to the server during the page phase")
    args = parser.parse_args()
    if not 1 <= args.requests <= 10000:
        parser.error("--requests 1..10000")
    if not 1 <= args.clients <= 64:
        parser.error("--clients 1..64")
    if args.quick:
        args.requests = min(args.requests, 60)
        args.max_seconds = min(args.max_seconds, 30)

    def log(text: str) -> None:
        print(text, flush=True)

    def terminated(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # runs the clean-up below

    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="cf-forum-bench-"))
    data_dir = workdir / "data"
    server: Server | None = None
    bare: Server | None = None
    started = time.perf_counter()
    try:
        log(f"Building the data in {data_dir}")
        info = build(data_dir, log)
        server = Server(data_dir, workdir)
        server.wait_ready()
        if not args.no_bare:
            bare = Server(data_dir, workdir, bare=True)
            bare.wait_ready()
        settle = wait_for_consumers(data_dir / "caseforum.db")
        log(f"Server: pid {server.proc.pid} on {server.url}, RSS {server.rss_mb():.0f} MB; "
            f"event consumers caught up with the build's backlog after {settle:.1f} s")

        log("Thread page and API")
        prof = Profiler(server.proc.pid, workdir / "page.txt") if args.profile else None
        timings, facts = page_phase(server.url, server, info, args, log, bare)
        profile = prof.stop() if prof else None

        log("\n## Results\n")
        log(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}; one uvicorn worker in its own process; "
            f"SQLite WAL; in-process broker; {info['posts']} posts, 20 dossiers.\n")
        log("| endpoint | requests | errors | p50 ms | p95 ms | p99 ms | max ms | req/s "
            "| server CPU ms/req |")
        log("|---|---|---|---|---|---|---|---|---|")
        for t in timings:
            log(t.row())
        log(f"\nPage: {facts['posts_on_page']} posts, {facts['cards_on_page']} cards "
            f"({facts['distinct_cards']} distinct), {facts['page_kb']:.0f} kB HTML of which "
            f"{facts['cards_kb']:.0f} kB cards. "
            f"API: {facts['api_posts']} posts, {facts['api_cards']} cards, "
            f"{facts['api_kb']:.0f} kB JSON.")
        if facts.get("pairs"):
            log(f"Bare anchor: the same posts, cards and forms, {facts['bare_kb']:.0f} kB HTML "
                f"(no page frame, no bell).\n")
            log("| row | CaseForum req/s | bare req/s | ratio | goal |")
            log("|---|---|---|---|---|")
            for n_clients, cf, b in facts["pairs"]:
                ratio = rate(cf) / rate(b) if rate(b) else float("nan")
                row = f"thread page, {n_clients} client{'s' if n_clients > 1 else ''}"
                log(f"| {row} | {rate(cf):.1f} | {rate(b):.1f} | {ratio:.2f} | >= 0.40 |")
                summary(row, rate(cf), rate(b), ">= 0.40", "req/s")
            cf, b = facts["pairs"][0][1:]
            if cf.cpu is not None and b.cpu is not None and cf.times and b.times:
                # server CPU per request: steadier than req/s on a shared machine
                cf_ms, b_ms = (t.cpu / (len(t.times) + t.errors) * 1000 for t in (cf, b))
                log(f"| thread page, server CPU ms per request | {cf_ms:.0f} | {b_ms:.0f} | "
                    f"{b_ms / cf_ms:.2f} | >= 0.40 |")
                summary("thread page, server CPU ms/request (1 client)", cf_ms, b_ms,
                        ">= 0.40", "ms", higher_is_better=False)
        if profile:
            summarise_profile(profile, "thread page and thread API", log)
        log(f"\nTotal run time {time.perf_counter() - started:.0f} s.")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        for running in (server, bare):
            if running is not None:
                running.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
