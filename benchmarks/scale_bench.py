"""Scale-out benchmark on PostgreSQL and Redis: worker processes, two hosts, a million
dossiers, each against a bare anchor in the same run.

Three modes (all of them, one after the other, when none is named):

``workers``
    A fresh PostgreSQL database with the thread of ``forum_bench.py`` (200 posts, 20
    dossier cards) and filler dossiers of ``dossiers_bench.py``; for each N of
    ``--workers`` (1 2 4), ``caseforum serve --workers N`` (Redis, no event consumers:
    see ``NO_CONSUMERS``) and
    the bare anchor under ``uvicorn --workers N`` (``bare_app`` below: the thread page of
    ``forum_bench.py`` and a dossier API reading the same rows with raw SQL), loaded by
    ``--clients`` concurrent clients in two client processes, the two servers in
    alternating rounds.  Prints requests/s per N, the ratio to the anchor, the gain per
    added worker, the server's and PostgreSQL's CPU per request, and what that CPU
    would carry on a larger host.
``watchers``
    ``fanout_bench.py`` across two CaseForum hosts (two server processes with their own
    data folders on one PostgreSQL database and one Redis), ``--watchers`` websocket
    watchers dealt out over both, every post made through the first; the anchor is two
    bare broadcast processes relaying each post through Redis pub/sub.
``big``
    ``--dossiers`` (1,000,000) generated straight into the app's own tables with
    ``COPY`` (offices and family sizes in realistic shares, a few documents, citations
    and priorities for some), then one client reading random dossiers' page and API,
    request by request alternating with the bare anchor reading the same rows:
    p50/p95/p99; and the search indexer's rate on a sample of them.  ``--keep NAME``
    keeps the database for the next run.

    .venv/bin/python benchmarks/scale_bench.py workers --quick
    .venv/bin/python benchmarks/scale_bench.py watchers --quick
    .venv/bin/python benchmarks/scale_bench.py big --quick            # 50,000 dossiers
    .venv/bin/python benchmarks/scale_bench.py big --keep cf_big_1m   # build once, reuse

PostgreSQL at ``--postgres`` (an account that may create databases) and Redis at
``--redis`` must be running; each run makes a database of its own and drops it at the
end (also on errors, Ctrl-C and SIGTERM), unless ``big --keep`` names one.  Redis
pub/sub channels are not per database: CaseForum's wake-ups share the channel
``caseforum:events`` with anything else on that Redis, which at worst wakes its
consumers for nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    ADMIN_URL,
    ConnectionPool,
    PostgresDatabase,
    ServerProcess,
    conditions,
    demo_instance,
    exit_on_sigterm,
    free_port,
    pct,
    plain_dsn,
    run_each,
    summary,
)

HERE = Path(__file__).resolve().parent
SECRET = "scale-bench-secret-key-0123456789"
VIEWER = "kr.examiner"  # an accessing office: sees every filler dossier
#: CaseForum runs without its event consumers (``run_consumers = false``): the measured
#: requests emit no events, so running consumers would only idle (two per cent of a core
#: per worker, measured), but a host without a search index of its own rebuilds it from
#: every dossier in the background (about 100 to 300 dossiers/s on 2 cores: the whole
#: run and more), which is a cost of its own (``big`` times it on a sample)
NO_CONSUMERS = {"CASEFORUM_RUN_CONSUMERS": "false"}
#: no measured request logs in: the readers' accounts and log-ins use argon2's cheapest
#: parameters (``password_hash_profile``), which on a loaded 2-core machine saves a
#: second of CPU per log-in before the measurements
HASH_PROFILE = "test"
API = "dossier API"
PAGE = "thread page"
DOSSIER_PAGE = "dossier page"


# The bare anchor: the thread page and the dossier rows, raw SQL, under uvicorn ----------

BARE_DOSSIER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ a.display_number }} · CaseForum</title>
<link rel="stylesheet" href="/static/css/app.css"></head>
<body><main id="main">
<h1><span class="office-badge" title="{{ office_name }}">{{ a.office_code }}</span> {{ a.display_number }}</h1>
<p class="lead">{{ a.title }}</p>
<dl class="facts"><dt>Applicants</dt><dd>{{ a.applicants | join("; ") }}</dd>
<dt>Filed</dt><dd>{{ a.filing_date }}</dd><dt>Published</dt><dd>{{ a.publication_number }} ({{ a.publication_date }})</dd>
<dt>IPC</dt><dd>{{ a.ipc | join(", ") }}</dd>{% if a.pct_number %}<dt>PCT</dt><dd>{{ a.pct_number }}</dd>{% endif %}</dl>
{% if priorities %}<h2>Priorities</h2><ul>{% for p in priorities %}<li>{{ p.office_code }} {{ p.number }} {{ p.date }}</li>{% endfor %}</ul>{% endif %}
<h2>Family</h2><table><tbody>{% for m in family %}<tr><td>{{ m.office_code }}</td><td><a href="/dossiers/{{ m.office_code }}/{{ m.number }}">{{ m.display_number }}</a></td><td>{{ m.filing_date }}</td><td>{{ m.title }}</td><td>{% for code in reports.get(m.id, []) %}<code>{{ code }}</code> {% endfor %}</td></tr>{% endfor %}</tbody></table>
<h2>Documents ({{ documents | length }})</h2><table><tbody>{% for d in documents %}<tr><td>{{ d.date }}</td><td><a href="/documents/{{ d.id }}"><code>{{ d.code }}</code></a></td><td>{{ d.language }}</td><td>{{ d.pages }} p.</td><td>{{ d.visibility }} {{ named.get(d.id, []) | join(" ") }}</td></tr>{% endfor %}</tbody></table>
<h2>Citations ({{ citations | length }})</h2><table><tbody>{% for c in citations %}<tr><td>{{ c.category }}</td><td>{{ c.cited }}</td><td>{{ c.claims }}</td><td>{{ c.citing_office }}</td></tr>{% endfor %}</tbody></table>
</main></body></html>
"""  # noqa: E501  (one element a line)

DOSSIER_COLUMNS = ("id", "office_code", "number", "display_number", "kind", "filing_date",
                   "publication_number", "publication_date", "title", "applicants", "ipc",
                   "cpc", "pct_number", "family_id", "source")
DOCUMENT_COLUMNS = ("id", "application_id", "code", "date", "language", "is_translation",
                    "visibility", "media_type", "size", "sha256", "pages", "filename")


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def bare_dossier_routes() -> list[Any]:
    """``GET /api/v1/dossiers/{office}/{number}`` and ``GET /dossiers/{office}/{number}``
    reading what CaseForum's answers read, by the same indexes: the dossier with its
    family, its documents that ``BARE_OFFICE`` may see (and their named offices), its
    priorities and citations, and for the page the family's documents and the providing
    office's name.  No log-in, session, plugins, document labels or page frame."""
    from jinja2 import Environment
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    pool = ConnectionPool(os.environ["BARE_DB"], size=8)
    office = os.environ.get("BARE_OFFICE", "KR")
    template = Environment(autoescape=True, auto_reload=False).from_string(BARE_DOSSIER)

    def rows(c: Any, sql: str, params: Any, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        return [dict(zip(columns, r, strict=True)) for r in c.execute(sql, params)]

    def read(c: Any, code: str, number: str, page: bool) -> dict[str, Any] | None:
        found = rows(c, f"SELECT {', '.join(DOSSIER_COLUMNS)} FROM application WHERE "
                        "(office_code = ? AND number = ?) OR family_id = (SELECT family_id "
                        "FROM application WHERE office_code = ? AND number = ?) "
                        "ORDER BY filing_date, office_code", (code, number, code, number),
                     DOSSIER_COLUMNS)
        app = next((a for a in found if a["office_code"] == code and a["number"] == number),
                   None)
        if app is None:
            return None
        family = [a for a in found if a["family_id"] == app["family_id"]] \
            if app["family_id"] is not None else [app]
        visible = ("(visibility <> 'restricted' OR id IN (SELECT document_id FROM "
                   "document_office WHERE office_code = ?))")
        documents = rows(c, f"SELECT {', '.join(DOCUMENT_COLUMNS)} FROM document WHERE "
                            f"application_id = ? AND {visible} ORDER BY date, id",
                         (app["id"], office), DOCUMENT_COLUMNS)
        restricted = [d["id"] for d in documents if d["visibility"] == "restricted"]
        named: dict[int, list[str]] = {}
        if restricted:
            for doc_id, named_office in c.execute(
                    "SELECT document_id, office_code FROM document_office WHERE document_id "
                    f"IN ({','.join('?' * len(restricted))}) ORDER BY office_code", restricted):
                named.setdefault(doc_id, []).append(named_office)
        facts = {
            "app": app, "family": family, "documents": documents, "named": named,
            "priorities": rows(c, "SELECT office_code, number, date FROM priority WHERE "
                                  "application_id = ? ORDER BY date", (app["id"],),
                               ("office_code", "number", "date")),
            "citations": rows(c, "SELECT id, cited, category, claims, phase, document_id, "
                                 "citing_office FROM citation WHERE application_id = ? "
                                 "ORDER BY id", (app["id"],),
                              ("id", "cited", "category", "claims", "phase", "document_id",
                               "citing_office")),
        }
        if page:
            ids = [m["id"] for m in family]
            reports: dict[int, list[str]] = {}
            for app_id, code_ in c.execute(
                    f"SELECT application_id, code FROM document WHERE application_id IN "
                    f"({','.join('?' * len(ids))}) AND {visible} AND code IN "
                    "('SRPT', 'CTNF', 'CTFR') ORDER BY date", [*ids, office]):
                reports.setdefault(app_id, []).append(code_)
            facts["reports"] = reports
            facts["office_name"] = c.execute("SELECT name FROM office WHERE code = ?",
                                             (code,)).fetchone()[0]
        return facts

    def api(request: Any) -> Response:
        with pool.connection() as c:
            f = read(c, request.path_params["office"], request.path_params["number"], False)
        if f is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        body = {k: _iso(v) for k, v in f["app"].items() if k not in ("id", "family_id")}
        body["priorities"] = [{k: _iso(v) for k, v in p.items()} for p in f["priorities"]]
        body["documents"] = [{**{k: _iso(v) for k, v in d.items() if k != "application_id"},
                              "offices": f["named"].get(d["id"], [])} for d in f["documents"]]
        body["citations"] = f["citations"]
        body["family"] = [{k: _iso(m[k]) for k in ("office_code", "number", "display_number",
                                                   "filing_date", "publication_number",
                                                   "title")} for m in f["family"]]
        return JSONResponse(body)

    def page(request: Any) -> Response:
        with pool.connection() as c:
            f = read(c, request.path_params["office"], request.path_params["number"], True)
        if f is None:
            return HTMLResponse("not found", status_code=404)
        return HTMLResponse(template.render(a=f.pop("app"), **f))

    return [Route("/api/v1/dossiers/{office}/{number}", api),
            Route("/dossiers/{office}/{number}", page)]


def bare_app() -> Any:
    """``uvicorn --factory scale_bench:bare_app``: the thread page of ``forum_bench.py``'s
    anchor and the dossier routes above, on the database in ``BARE_DB``."""
    from forum_bench import bare_thread_page
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    return Starlette(routes=[Route("/threads/{thread_id:int}", bare_thread_page()),
                             *bare_dossier_routes(),
                             Route("/healthz", lambda r: PlainTextResponse("ok"))])


# Servers --------------------------------------------------------------------------------


class Server(ServerProcess):
    """``caseforum serve --workers N`` or the bare anchor under ``uvicorn --workers N``,
    both with uvicorn's access log on (as ``caseforum serve`` has it)."""

    def __init__(self, *, bare: bool, workers: int, workdir: Path, data_dir: Path,
                 database_url: str, redis_url: str, name: str,
                 settings: dict[str, str] | None = None) -> None:
        """``settings``: more environment for the server (``CASEFORUM_...``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        env.update(PYTHONUNBUFFERED="1", CASEFORUM_DATA_DIR=str(data_dir),
                   CASEFORUM_SECRET_KEY=SECRET, CASEFORUM_DATABASE_URL=database_url,
                   CASEFORUM_REDIS_URL=redis_url, BARE_DB=plain_dsn(database_url),
                   CASEFORUM_PASSWORD_HASH_PROFILE=HASH_PROFILE, **(settings or {}),
                   BARE_OFFICE=VIEWER[:2].upper())
        if bare:
            command = [sys.executable, "-m", "uvicorn", "--factory", "scale_bench:bare_app",
                       "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(self.port),
                       "--workers", str(workers)]
        else:
            command = [sys.executable, "-m", "caseforum", "serve", "--host", "127.0.0.1",
                       "--port", str(self.port), "--workers", str(workers)]
        self.spawn(command, env=env, workdir=workdir, log_name=f"{name}.log")

    def wait_workers(self, seconds: float = 90) -> None:
        """Until the server answers and, with several workers, all of them run."""
        self.wait_ready("/healthz", seconds)
        deadline = time.monotonic() + seconds
        while self.workers > 1 and len(self.cpu_by_process()) < self.workers + 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.cpu_by_process()) - 1} of {self.workers} "
                                   f"workers started: {self.tail()}")
            time.sleep(0.1)


# Concurrent clients in processes of their own --------------------------------------------


@dataclass
class Load:
    """What one timed round gave: latencies (s) of the answers within the round."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    answered: int = 0  # the round's requests, those answered after its end too
    server_cpu: float = 0.0
    db_cpu: float = 0.0
    worker_cpu: list[float] = field(default_factory=list)

    def add(self, other: Load) -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.errors += other.errors
        self.answered += other.answered
        self.server_cpu += other.server_cpu
        self.db_cpu += other.db_cpu
        self.worker_cpu = [a + b for a, b in zip(self.worker_cpu, other.worker_cpu,
                                                 strict=False)] or other.worker_cpu

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def cpu_ms(self, cpu: float) -> float:
        """CPU per request: read once every request of the round was answered."""
        return cpu / self.answered * 1000 if self.answered else float("nan")


@dataclass
class Target:
    """One server's endpoint as the clients request it."""

    base: str
    paths: list[str]
    login: bool = False  # log in through the form (a reader each) instead of a token
    token: str | None = None


def _login(client: httpx.Client, username: str) -> None:
    from forum_bench import login

    login(client, username)


def _client_process(conn: Any, targets: dict[str, Target], threads: int, first: int) -> None:
    """One client process: ``threads`` clients per target (logged in, or with the token),
    then timed rounds on command until told to stop."""
    from forum_bench import PAGE_VIEWER, READERS

    clients: dict[str, list[httpx.Client]] = {}
    try:
        for key, target in targets.items():
            made = []
            for i in range(threads):
                headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
                client = httpx.Client(base_url=target.base, timeout=60, headers=headers)
                if target.login:
                    _login(client, f"{PAGE_VIEWER}{(first + i) % READERS:02d}")
                made.append(client)
            clients[key] = made
        conn.send("ready")
        while True:
            command = conn.recv()
            if command is None:
                return
            key, base, start_at, seconds = command
            for client in clients[key]:  # the same clients (and log-ins) for every N
                client.base_url = httpx.URL(base)
            conn.send(_round(clients[key], targets[key].paths, start_at, seconds, first))
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        conn.send(f"client process failed: {exc!r}")
    finally:
        for made in clients.values():
            for client in made:
                client.close()


def _round(clients: list[httpx.Client], paths: list[str], start_at: float, seconds: float,
           first: int) -> tuple[list[float], int, int]:
    """Latencies of the answers that came within the round, the errors, and every answer
    (those that came after its end too: the server's CPU is read once they are in)."""
    latencies: list[float] = []
    errors = [0]
    answered = [0]
    lock = threading.Lock()
    deadline = start_at + seconds

    def work(n: int, client: httpx.Client) -> None:
        mine: list[float] = []
        bad = late = 0
        k = (first + n) * 7919
        time.sleep(max(0.0, start_at - time.time()))
        while True:
            t = time.time()
            if t >= deadline:
                break
            try:
                ok = client.get(paths[k % len(paths)]).status_code == 200
            except httpx.HTTPError:
                ok = False
            k += 1
            done = time.time()
            if done > deadline:
                late += ok
                break
            if ok:
                mine.append(done - t)
            else:
                bad += 1
        with lock:
            latencies.extend(mine)
            errors[0] += bad
            answered[0] += len(mine) + late

    workers = [threading.Thread(target=work, args=(n, c)) for n, c in enumerate(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, errors[0], answered[0]


class Clients:
    """``processes`` client processes (forked), each with ``clients / processes`` clients
    per target; a round runs them all against one target for a set time."""

    def __init__(self, targets: dict[str, Target], clients: int, processes: int) -> None:
        context = multiprocessing.get_context("fork")
        per = max(1, clients // processes)
        self.count = per * processes
        self.pipes = []
        self.procs = []
        for p in range(processes):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_client_process, args=(theirs, targets, per, p * per),
                                   daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def wait_ready(self) -> None:
        """Until every client is logged in (done meanwhile in the client processes)."""
        for pipe in self.pipes:
            self._answer(pipe, 300)

    @staticmethod
    def _answer(pipe: Any, seconds: float) -> Any:
        if not pipe.poll(seconds):
            raise RuntimeError("a client process did not answer")
        answer = pipe.recv()
        if isinstance(answer, str) and answer != "ready":
            raise RuntimeError(answer)
        return answer

    def round(self, key: str, base: str, seconds: float) -> tuple[list[float], int, int]:
        """All clients against ``key`` at ``base`` for ``seconds``: see :func:`_round`.
        Log-in sessions live in the database, so they hold across server restarts."""
        start_at = time.time() + 0.2
        for pipe in self.pipes:
            pipe.send((key, base, start_at, seconds))
        latencies: list[float] = []
        errors = answered = 0
        for pipe in self.pipes:
            got, bad, all_ = self._answer(pipe, seconds + 120)
            latencies += got
            errors += bad
            answered += all_
        return latencies, errors, answered

    def close(self) -> None:
        """Ask the client processes to end; one still in a round is killed."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def measure(clients: Clients, key: str, server: Server, db: PostgresDatabase,
            seconds: float) -> Load:
    """One timed round against ``server``, with its CPU (all its processes) and that of
    PostgreSQL's sessions on the database over the round."""
    cpu0, db0 = server.cpu_by_process(), db.backend_cpu_seconds()
    latencies, errors, answered = clients.round(key, server.url, seconds)
    cpu1, db1 = server.cpu_by_process(), db.backend_cpu_seconds()
    # the busiest N processes below the supervisor (not multiprocessing's helpers)
    per_worker = sorted((cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1
                         if pid != server.proc.pid or server.workers == 1),
                        reverse=True)[:server.workers]
    return Load(seconds, latencies, errors, answered,
                server_cpu=sum(cpu1.values()) - sum(cpu0.values()), db_cpu=max(0.0, db1 - db0),
                worker_cpu=per_worker)


# Building the data ------------------------------------------------------------------------


def random_dossiers(database_url: str, n: int, seed: int = 11) -> list[tuple[str, str]]:
    """``n`` random hosted dossiers (office, number), IB's left out as in
    ``dossiers_bench.py``; drawn by id, so a million rows cost no scan."""
    import psycopg

    rng = random.Random(seed)
    with psycopg.connect(plain_dsn(database_url)) as conn:
        low, high = conn.execute("SELECT min(id), max(id) FROM application").fetchone()
        picks: list[tuple[str, str]] = []
        while len(picks) < n:
            ids = [rng.randint(low, high) for _ in range(max(100, n))]
            found = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT id, office_code, number FROM application WHERE id = ANY(%s) "
                "AND office_code <> 'IB'", (ids,))}
            picks += [found[i] for i in ids if i in found][: n - len(picks)]
    return picks


def build_workers_data(data_dir: Path, database_url: str, dossiers: int,
                       log: Any) -> dict[str, Any]:
    """The thread of ``forum_bench.py`` and filler dossiers of ``dossiers_bench.py``."""
    import forum_bench
    from dossiers_bench import add_filler

    from caseforum.config import load_settings
    from caseforum.db import make_engine

    info = forum_bench.build(data_dir, log, database_url)
    started = time.perf_counter()
    settings = load_settings(data_dir=data_dir, secret_key=SECRET, database_url=database_url)
    engine = make_engine(settings)
    counts = add_filler(engine, dossiers, text_bytes=1024)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    log(f"  filler: {counts} in {time.perf_counter() - started:.1f} s")
    return info


# Office shares of the generated dossiers (roughly the IP5 and CASE offices' filings)
BIG_OFFICES = (("CN", 36), ("US", 24), ("JP", 14), ("KR", 11), ("AU", 6), ("GB", 5),
               ("CA", 2), ("IL", 2))
FAMILY_SIZES = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4)
DOC_CODES = (("CLM", 0), ("SRPT", 300), ("CTNF", 420), ("AMND", 520), ("NOA", 820))
TITLE_WORDS = ("heat", "exchanger", "battery", "electrode", "display", "panel", "sensor",
               "method", "device", "layer", "substrate", "controller", "signal", "vehicle",
               "composition", "polymer", "antenna", "valve", "circuit", "image")


class Numbering:
    """Application and publication numbers in each office's layout, unique by a counter
    per office and year; ``taken`` holds the numbers already in the database (the
    demo's), which are skipped."""

    def __init__(self, taken: set[tuple[str, str]]) -> None:
        self.taken = taken
        self.serials: dict[tuple[str, int], int] = {}

    def next(self, office: str, year: int) -> tuple[str, str, str, str]:
        """(number, display number, publication number, publication display)."""
        while True:
            key = (office, year if office not in ("US", "GB", "CA", "IL") else 0)
            s = self.serials[key] = self.serials.get(key, 600000) + 1
            number, display = {
                "JP": (f"{year}{s:06d}", f"{year}-{s:06d}"),
                "CN": (f"{year}1{s:07d}", f"{year}1{s:07d}"),
                "KR": (f"10{year}{s:07d}", f"10-{year}-{s:07d}"),
                "US": (f"{16 + s // 10**6}{s % 10**6:06d}",
                       f"{16 + s // 10**6}/{s % 10**6 // 1000:03d},{s % 1000:03d}"),
                "AU": (f"{year}{s:06d}", f"{year}{s:06d}"),
                "GB": (f"{2 + s // 10**6}{s % 10**6:06d}", f"{2 + s // 10**6}{s % 10**6:06d}"),
                "CA": (f"3{s:06d}", f"3{s:06d}"),
                "IL": (f"{s:06d}", f"{s:06d}"),
            }[office]
            if (office, number) not in self.taken:  # the counters never repeat themselves
                pub_year = year + 1
                return number, display, f"{office}{pub_year}{s:06d}", \
                    f"{office} {pub_year}/{s:06d} A"

    def pct(self, office: str, year: int) -> str:
        """A PCT application's number as stored (``JP2020009517``)."""
        key = (f"PCT-{office}", year)
        s = self.serials[key] = self.serials.get(key, 600000) + 1
        return f"{office}{year}{s:06d}"


def generate_dossiers(database_url: str, count: int, log: Any, *, seed: int = 5,
                      text_bytes: int = 600, chunk: int = 20_000) -> dict[str, int]:
    """``count`` hosted dossiers written with ``COPY`` into the app's tables, a chunk
    (one transaction) at a time: families of one to four offices (a sixth of the larger
    ones through a PCT application at the IB, the later members claiming the first's
    priority), a third of the dossiers with one to five documents (a tenth of those
    restricted to two named offices), and citations for those with a search report."""
    import psycopg

    rng = random.Random(seed)
    now = datetime.now(UTC)
    offices = [o for o, _ in BIG_OFFICES]
    weights = [w for _, w in BIG_OFFICES]
    prior_art = [(f"{p} {y}/{n} A1", f"{p}{y}{n}") for p in ("WO", "US", "JP", "EP", "CN")
                 for y, n in ((rng.randint(2005, 2018), rng.randint(100000, 999999))
                              for _ in range(400))]
    with psycopg.connect(plain_dsn(database_url)) as conn:
        taken = {(r[0], r[1]) for r in conn.execute("SELECT office_code, number FROM application")}
        ids = {t: (conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]) + 1
               for t in ("family", "application", "document")}
        numbering = Numbering(taken)
        made = {"dossiers": 0, "families": 0, "documents": 0, "citations": 0,
                "priorities": 0}
        started = time.perf_counter()
        while made["dossiers"] < count:
            tables: dict[str, list[tuple[Any, ...]]] = {
                "family": [], "application": [], "priority": [], "document": [],
                "document_office": [], "citation": []}
            goal = min(count, made["dossiers"] + chunk)
            while made["dossiers"] < goal:
                size = min(rng.choice(FAMILY_SIZES), goal - made["dossiers"])
                members = []
                while len(members) < size:
                    office = rng.choices(offices, weights)[0]
                    if office not in members:
                        members.append(office)
                first = date(2012, 1, 1) + timedelta(days=rng.randint(0, 12 * 365))
                fam = ids["family"]
                ids["family"] += 1
                tables["family"].append((fam, now))
                made["families"] += 1
                pct = numbering.pct(members[0], first.year) \
                    if size >= 2 and rng.random() < 0.17 else None
                root: tuple[str, str, date] | None = None
                for position, office in enumerate(members):
                    filing = first if position == 0 else first + timedelta(days=350)
                    kind, code_office = "national", office
                    if pct and position == 1:  # the PCT member replaces the second
                        kind, code_office = "pct", "IB"
                        number = display = pct
                        pub, pub_display = f"WO{filing.year + 1}{pct[-6:]}", \
                            f"WO {filing.year + 1}/{pct[-6:]} A1"
                    else:
                        number, display, pub, pub_display = numbering.next(office, filing.year)
                    app_id = ids["application"]
                    ids["application"] += 1
                    words = rng.sample(TITLE_WORDS, 5)
                    tables["application"].append((
                        app_id, code_office, number, display, kind, filing, pub, pub_display,
                        filing + timedelta(days=540), " ".join(words).capitalize(),
                        json.dumps([f"{words[0].capitalize()} Industries "
                                    f"{rng.randint(1, 5000)} Co., Ltd."]),
                        json.dumps(["H01M 10/0562", "G06F 17/00"][: rng.randint(1, 2)]), "[]",
                        pct if kind == "national" and position > 0 else None, fam, "hosted",
                        "scale-bench", now, now))
                    made["dossiers"] += 1
                    if root is None:
                        root = (code_office, number, filing)
                    else:
                        tables["priority"].append((app_id, root[0], root[1], root[1], root[2]))
                        made["priorities"] += 1
                    if rng.random() < 0.33:
                        search = None
                        for doc_code, days in rng.sample(DOC_CODES, rng.randint(1, 5)):
                            doc_id = ids["document"]
                            ids["document"] += 1
                            roll = rng.random()
                            visibility = "public" if roll < 0.1 else \
                                "restricted" if roll < 0.2 else "offices"
                            tables["document"].append((
                                doc_id, app_id, doc_code,
                                min(filing + timedelta(days=days), date.today()), "en", False,
                                "application/pdf", 40_000 + rng.randint(0, 400_000),
                                f"{doc_id:064x}", f"{doc_code.lower()}.pdf", rng.randint(1, 30),
                                visibility, " ".join(rng.choices(TITLE_WORDS, k=text_bytes // 7)),
                                now, ""))
                            made["documents"] += 1
                            if visibility == "restricted":
                                tables["document_office"] += [
                                    (doc_id, o) for o in rng.sample(("JP", "KR", "CN", "AU"), 2)]
                            if doc_code == "SRPT":
                                search = doc_id
                        if search is not None:
                            for _ in range(rng.randint(1, 4)):
                                cited, cited_number = rng.choice(prior_art)
                                tables["citation"].append((
                                    app_id, search, cited, cited_number,
                                    rng.choice(("X", "Y", "A", "A")), f"1-{rng.randint(2, 20)}",
                                    "search", code_office, now))
                                made["citations"] += 1
            _copy(conn, tables)
            conn.commit()
            done = made["dossiers"]
            if done % (chunk * 10) < chunk or done == count:
                rate = done / (time.perf_counter() - started)
                log(f"  {done:,} dossiers ({rate:,.0f}/s)")
        for table in ("family", "application", "document", "priority", "citation"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"(SELECT max(id) FROM {table}))")
        conn.commit()
    with psycopg.connect(plain_dsn(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return made


COPY_COLUMNS = {
    "family": "id, created_at",
    "application": "id, office_code, number, display_number, kind, filing_date, "
                   "publication_number, publication_display, publication_date, title, "
                   "applicants, ipc, cpc, pct_number, family_id, source, source_ref, "
                   "created_at, updated_at",
    "priority": "application_id, office_code, number, display_number, date",
    "document": "id, application_id, code, date, language, is_translation, media_type, size, "
                "sha256, filename, pages, visibility, text_content, created_at, label",
    "document_office": "document_id, office_code",
    "citation": "application_id, document_id, cited, cited_number, category, claims, phase, "
                "citing_office, created_at",
}


def _copy(conn: Any, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    with conn.cursor() as cur:
        for table, rows in tables.items():  # in foreign-key order
            if not rows:
                continue
            with cur.copy(f"COPY {table} ({COPY_COLUMNS[table]}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def prepare_instance(data_dir: Path, database_url: str, log: Any) -> None:
    """``init`` and the demo data on an empty database (the accounts the clients use)."""
    started = time.perf_counter()
    _, engine, _ = demo_instance(data_dir, SECRET, database_url)
    engine.dispose()
    log(f"  init and demo data: {time.perf_counter() - started:.1f} s")


def index_rate(data_dir: Path, database_url: str, picks: list[tuple[str, str]]) -> float:
    """Dossiers per second that the search indexer writes (read from the database and
    committed to a fresh Whoosh index), for ``picks``: what a host's rebuild costs."""
    from sqlmodel import col, select

    from caseforum.app import build_doc_types
    from caseforum.config import load_settings
    from caseforum.db import make_engine, open_session
    from caseforum.models import Application
    from caseforum.plugin_host import PluginHost
    from caseforum.search import items, store
    from caseforum.search.indexer import CHUNK

    settings = load_settings(data_dir=data_dir, secret_key=SECRET, database_url=database_url)
    host = PluginHost(settings.plugins)
    host.load()
    describe = build_doc_types(host).describe
    engine = make_engine(settings)
    folder = Path(tempfile.mkdtemp(prefix="index-", dir=data_dir))
    try:
        ix = store.create(folder)
        with open_session(engine) as session:
            ids = sorted({i for o, n in picks for i in session.exec(
                select(Application.id).where(Application.office_code == o,
                                             col(Application.number) == n))})
            started = time.perf_counter()
            for start in range(0, len(ids), CHUNK):
                store.write(ix, [items.dossiers(session, ids[start:start + CHUNK], describe)])
                session.expunge_all()
            took = time.perf_counter() - started
        ix.close()
    finally:
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return len(ids) / took if took else float("nan")


def api_token(data_dir: Path, database_url: str) -> str:
    """A ``dossiers:read`` token of the viewer."""
    from dossiers_bench import bearer

    from caseforum.config import load_settings

    return bearer(load_settings(data_dir=data_dir, secret_key=SECRET,
                                database_url=database_url), VIEWER)


# Modes --------------------------------------------------------------------------------------


@contextlib.contextmanager
def workplace(args: argparse.Namespace, log: Any, *, name: str | None = None,
              keep: bool = False) -> Iterator[tuple[Path, PostgresDatabase, list[Any]]]:
    """A temporary folder and a database of the run's own; whatever is put in the
    list (servers, client pools) is stopped at the end, then the database dropped."""
    from caseforum import passwords

    passwords.configure(HASH_PROFILE)
    workdir = Path(tempfile.mkdtemp(prefix="cf-scale-bench-"))
    db = PostgresDatabase(args.postgres, name=name, keep=keep)
    running: list[Any] = []
    log(f"Work folder {workdir}, database {db.name}")
    try:
        yield workdir, db, running
    finally:
        steps = [getattr(r, "close", None) or r.stop for r in reversed(running)]
        run_each([*steps, db.drop, lambda: keep_logs(workdir, args.logs, log),
                  lambda: shutil.rmtree(workdir, ignore_errors=True)])
        if db.keep and db.created:
            log(f"kept database {db.name} (drop it with: psql -c 'DROP DATABASE {db.name}')")


def keep_logs(workdir: Path, into: str | None, log: Any) -> None:
    """Copy the servers' logs (``*.log`` in the work folder) to ``--logs``: a crashed
    worker's traceback is in them, and the work folder is removed at the end."""
    if not into:
        return
    target = Path(into)
    target.mkdir(parents=True, exist_ok=True)
    copied = [shutil.copy2(path, target / path.name) for path in sorted(workdir.glob("*.log"))]
    log(f"{len(copied)} server log(s) kept in {target}")


def workers_mode(args: argparse.Namespace, log: Any) -> None:
    log(f"\n# Worker processes on PostgreSQL ({conditions()})\n")
    with workplace(args, log) as (workdir, db, running):
        db.create()
        data_dir = workdir / "data"
        log(f"Building the data in database {db.name}")
        info = build_workers_data(data_dir, db.url, args.dossiers, log)
        picks = random_dossiers(db.url, 500)
        api_paths = [f"/api/v1/dossiers/{o}/{n}" for o, n in picks]
        page_paths = [f"/threads/{info['thread_id']}"]
        results: dict[tuple[int, str, str], Load] = {}
        clients: Clients | None = None
        for n in args.workers:
            started = time.perf_counter()
            servers = {
                "CaseForum": Server(bare=False, workers=n, workdir=workdir, data_dir=data_dir,
                                    database_url=db.url, redis_url=args.redis,
                                    name=f"caseforum-{n}", settings=NO_CONSUMERS),
                "bare": Server(bare=True, workers=n, workdir=workdir, data_dir=data_dir,
                               database_url=db.url, redis_url=args.redis, name=f"bare-{n}"),
            }
            running += servers.values()
            for server in servers.values():
                server.wait_workers()
            ready = time.perf_counter() - started
            if clients is None:
                targets = {}
                for name, server in servers.items():
                    targets[f"{name}|{API}"] = Target(server.url, api_paths,
                                                      token=info["api_token"])
                    targets[f"{name}|{PAGE}"] = Target(server.url, page_paths,
                                                       login=name == "CaseForum")
                clients = Clients(targets, args.clients, args.client_processes)
                running.append(clients)
                clients.wait_ready()
            log(f"{n} worker(s): servers up in {ready:.1f} s, {clients.count} clients ready after "
                f"{time.perf_counter() - started:.1f} s (load average {os.getloadavg()[0]:.1f})")
            for endpoint in args.endpoints:
                for name, server in servers.items():  # warm-up: routes, templates, caches
                    clients.round(f"{name}|{endpoint}", server.url, args.warmup)
                for r in range(args.rounds):
                    order = list(servers) if r % 2 == 0 else list(reversed(servers))
                    for name in order:
                        got = measure(clients, f"{name}|{endpoint}", servers[name], db,
                                      args.seconds / args.rounds)
                        key = (n, endpoint, name)
                        if key in results:
                            results[key].add(got)
                        else:
                            results[key] = got
                for name in servers:
                    load = results[(n, endpoint, name)]
                    log(f"  {endpoint}, {name}: {load.rate:.1f} req/s, p50 "
                        f"{pct(load.latencies, 50) * 1000:.0f} ms, p95 "
                        f"{pct(load.latencies, 95) * 1000:.0f} ms, {load.errors} errors")
            for server in servers.values():
                server.stop()
                running.remove(server)
        report_workers(results, args, log)


def report_workers(results: dict[tuple[int, str, str], Load], args: argparse.Namespace,
                   log: Any) -> None:
    log(f"\n## Results: worker processes ({conditions()})\n")
    log(f"{args.clients} concurrent clients in {args.client_processes} processes on the same "
        f"machine; {args.seconds:g} s per server, endpoint and N, in {args.rounds} "
        f"alternating rounds; PostgreSQL and Redis on the same machine too.\n")
    log("| endpoint | workers | CaseForum req/s | bare req/s | ratio | CaseForum p95 ms "
        "| bare p95 ms | CaseForum CPU ms/req (app + PostgreSQL) | bare CPU ms/req "
        "(app + PostgreSQL) | busiest / idlest worker CPU | errors |")
    log("|---|---|---|---|---|---|---|---|---|---|---|")
    for endpoint in args.endpoints:
        for n in args.workers:
            cf, bare = results[(n, endpoint, "CaseForum")], results[(n, endpoint, "bare")]
            spread = (f"{cf.worker_cpu[0]:.1f} / {cf.worker_cpu[-1]:.1f} s"
                      if len(cf.worker_cpu) > 1 else "–")
            log(f"| {endpoint} | {n} | {cf.rate:.1f} | {bare.rate:.1f} | "
                f"{cf.rate / bare.rate if bare.rate else float('nan'):.2f} | "
                f"{pct(cf.latencies, 95) * 1000:.0f} | {pct(bare.latencies, 95) * 1000:.0f} | "
                f"{cf.cpu_ms(cf.server_cpu):.1f} + {cf.cpu_ms(cf.db_cpu):.1f} | "
                f"{bare.cpu_ms(bare.server_cpu):.1f} + {bare.cpu_ms(bare.db_cpu):.1f} | "
                f"{spread} | {cf.errors} / {bare.errors} |")
            summary(f"{endpoint}, {n} worker(s), PostgreSQL", cf.rate, bare.rate,
                    ">= 0.30" if endpoint == API else ">= 0.40", "req/s")
    one = args.workers[0]
    log(f"\nScaling: throughput at N workers / at {one}, and the gain per added worker "
        f"((ratio - 1) / (N - {one})); 1.00 per worker would be linear.\n")
    log("| endpoint | workers | CaseForum | per added worker | bare | per added worker |")
    log("|---|---|---|---|---|---|")
    for endpoint in args.endpoints:
        for n in args.workers[1:]:
            gains = []
            for name in ("CaseForum", "bare"):
                base = results[(one, endpoint, name)].rate
                ratio = results[(n, endpoint, name)].rate / base if base else float("nan")
                gains.append((ratio, (ratio - 1) / (n - one)))
            log(f"| {endpoint} | {n} | {gains[0][0]:.2f}× | {gains[0][1]:+.2f} | "
                f"{gains[1][0]:.2f}× | {gains[1][1]:+.2f} |")
            summary(f"{endpoint}, throughput {n} / {one} worker(s)", gains[0][0], gains[1][0],
                    "", "×")
    # the CPU per request where every core had a worker and none had two
    top = max([n for n in args.workers if n <= (os.cpu_count() or 1)] or args.workers[:1])
    log(f"\nWhat the CPU per request implies for a larger host (the app's CPU per request "
        f"at {top} worker(s), every core busy with one worker, PostgreSQL on a host of its "
        "own and the clients elsewhere; an upper bound: memory bandwidth, PostgreSQL's own "
        "limits and the load balancer are not in it):\n")
    for endpoint in args.endpoints:
        cf = results[(top, endpoint, "CaseForum")]
        bare = results[(top, endpoint, "bare")]
        app_ms, db_ms = cf.cpu_ms(cf.server_cpu), cf.cpu_ms(cf.db_cpu)
        bare_ms = bare.cpu_ms(bare.server_cpu)
        for cores in (2, 16):
            log(f"- {endpoint}, {cores} cores: CaseForum {cores * 1000 / app_ms:,.0f} req/s "
                f"(PostgreSQL then needs {cores * db_ms / app_ms:.1f} cores), bare "
                f"{cores * 1000 / bare_ms:,.0f} req/s")


def watchers_mode(args: argparse.Namespace, log: Any) -> int:
    import asyncio

    import fanout_bench

    log(f"\n# Websocket watchers across two hosts ({conditions()})\n")
    fanout_bench.raise_fd_limit(2 * args.watchers + 256)
    fan_args = argparse.Namespace(
        watchers=args.watchers, messages=args.messages, message_timeout=30,
        connect_timeout=300, connect_concurrency=25, src=None, profile=None,
        no_compression=False, languages=1)
    with workplace(args, log) as (workdir, db, running):
        db.create()
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        results = asyncio.run(fanout_bench.run(fan_args, workdir, log, running,
                                               hosts=args.hosts, database_url=db.url,
                                               redis_url=args.redis))
        log(f"\n## Results: {args.watchers} watchers across {args.hosts} hosts ({conditions()})")
        log("\nPostgreSQL and Redis; each post made through the first host; CaseForum's "
            "other host learns of it through a Redis wake-up and reads it from PostgreSQL, "
            "the bare processes relay the post's text through Redis pub/sub.")
        fanout_bench.report(results, fan_args, log, where=f" across {args.hosts} hosts")
        return 0 if all(r.ok() for r in results) else 1


def big_mode(args: argparse.Namespace, log: Any) -> None:
    from dossiers_bench import Result, run_paired

    log(f"\n# {args.dossiers:,} dossiers in PostgreSQL ({conditions()})\n")
    with workplace(args, log, name=args.keep, keep=args.keep is not None) as (workdir, db,
                                                                             running):
        data_dir = workdir / "data"
        if db.create():
            log(f"Generating {args.dossiers:,} dossiers in database {db.name}")
            try:
                prepare_instance(data_dir, db.url, log)
                started = time.perf_counter()
                made = generate_dossiers(db.url, args.dossiers, log)
            except BaseException:
                db.keep = False  # half a database is not worth keeping
                raise
            log(f"  {made} in {time.perf_counter() - started:.1f} s (COPY, then VACUUM ANALYZE)")
        else:
            log(f"Reusing the kept database {db.name}")
        import psycopg

        with psycopg.connect(db.dsn) as conn:
            total, documents = conn.execute(
                "SELECT (SELECT count(*) FROM application), (SELECT count(*) FROM document)"
            ).fetchone()
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))"
                                ).fetchone()[0]
        token = api_token(data_dir, db.url)
        picks = random_dossiers(db.url, args.requests)
        rate = index_rate(data_dir, db.url, random_dossiers(db.url, args.index_sample, seed=3))
        log(f"Search indexing: {args.index_sample:,} random dossiers written to a fresh index "
            f"at {rate:,.0f} dossiers/s; a full `caseforum reindex` of {total:,} would take "
            f"about {total / rate / 60:,.0f} min")
        summary(f"search indexing at {total:,} dossiers", rate, None, "", "dossiers/s")
        servers = {
            "CaseForum": Server(bare=False, workers=1, workdir=workdir, data_dir=data_dir,
                                database_url=db.url, redis_url=args.redis, name="caseforum",
                                settings=NO_CONSUMERS),
            "bare": Server(bare=True, workers=1, workdir=workdir, data_dir=data_dir,
                           database_url=db.url, redis_url=args.redis, name="bare"),
        }
        running += servers.values()
        for server in servers.values():
            server.wait_workers()
        cf, bare = servers["CaseForum"].url, servers["bare"].url

        def examiner() -> httpx.Client:
            client = httpx.Client(base_url=cf, timeout=60)
            _login(client, VIEWER)
            return client

        def machine() -> httpx.Client:
            return httpx.Client(base_url=cf, timeout=60,
                                headers={"Authorization": f"Bearer {token}"})

        def plain() -> httpx.Client:
            return httpx.Client(base_url=bare, timeout=60)

        pairs: list[tuple[str, Result, Result]] = []
        cpu: dict[tuple[str, str], float] = {}
        for label, maker, prefix in ((DOSSIER_PAGE, examiner, "/dossiers"),
                                     (API, machine, "/api/v1/dossiers")):
            paths = [f"{prefix}/{o}/{n}" for o, n in picks]
            before = {name: s.cpu_seconds() or 0.0 for name, s in servers.items()}
            db0 = db.backend_cpu_seconds()
            ours, anchor = run_paired((label, "bare"), (maker, plain), paths, concurrency=1,
                                      max_seconds=args.max_seconds)
            cpu[(label, "PostgreSQL")] = db.backend_cpu_seconds() - db0
            for name, server in servers.items():
                cpu[(label, name)] = (server.cpu_seconds() or 0.0) - before[name]
            pairs.append((label, ours, anchor))
        log(f"\n## Results: {total:,} dossiers, {documents:,} documents, database {size} "
            f"({conditions()})\n")
        log("One client, random dossiers (IB's left out), CaseForum and the bare anchor "
            "alternately request by request; one uvicorn worker each.\n")
        log("| endpoint | server | requests | errors | p50 ms | p95 ms | p99 ms | max ms "
            "| server CPU ms/req |")
        log("|---|---|---|---|---|---|---|---|---|")
        for label, ours, anchor in pairs:
            for name, res in (("CaseForum", ours), ("bare", anchor)):
                ms = [x * 1000 for x in res.latencies]
                top = max(ms, default=float("nan"))
                each = cpu[(label, name)] / max(1, len(ms) + res.errors) * 1000
                log(f"| {label} | {name} | {len(ms)} | {res.errors} | {pct(ms, 50):.1f} | "
                    f"{pct(ms, 95):.1f} | {pct(ms, 99):.1f} | {top:.1f} | {each:.1f} |")
            answered = len(ours.latencies) + len(anchor.latencies)
            log(f"| {label} | PostgreSQL, both | {answered} | | | | | | "
                f"{cpu[(label, 'PostgreSQL')] / max(1, answered) * 1000:.1f} |")
            summary(f"{label} p95 at {total:,} dossiers (PostgreSQL)",
                    pct(ours.latencies, 95) * 1000, pct(anchor.latencies, 95) * 1000,
                    "< 20 ms" if label == API else "", "ms",
                    higher_is_better=False)


# Main -------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("workers", "watchers", "big"),
                        help="one mode (default: all three, one after the other)")
    parser.add_argument("--quick", action="store_true",
                        help="each mode in under about two minutes: workers 1 2 4 with 8 "
                             "clients and 3 s per measurement, 200 watchers and 10 posts, "
                             "50,000 dossiers")
    parser.add_argument("--postgres", default=ADMIN_URL,
                        help="PostgreSQL to make the run's database on [%(default)s]")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11",
                        help="Redis for the wake-ups [%(default)s]")
    parser.add_argument("--logs", default=None, metavar="DIR",
                        help="copy the servers' logs here at the end (the work folder "
                             "is removed)")
    group = parser.add_argument_group("workers")
    group.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                       help="worker counts, one run each [1 2 4]")
    group.add_argument("--clients", type=int, default=None,
                       help="concurrent clients [16; --quick 8]")
    group.add_argument("--client-processes", type=int, default=2,
                       help="processes the clients are spread over [2]")
    group.add_argument("--seconds", type=float, default=None,
                       help="timed seconds per server, endpoint and N [20; --quick 3]")
    group.add_argument("--rounds", type=int, default=2,
                       help="alternating rounds the seconds are split into [2]")
    group.add_argument("--endpoints", nargs="+", default=["api", "page"],
                       choices=("api", "page"), help="what to load [api page]")
    group.add_argument("--warmup", type=float, default=None,
                       help="untimed seconds per server and endpoint first [3; --quick 0.5]")
    group = parser.add_argument_group("watchers")
    group.add_argument("--watchers", type=int, default=None,
                       help="websocket watchers over all hosts [1000; --quick 200]")
    group.add_argument("--messages", type=int, default=None, help="posts [30; --quick 10]")
    group.add_argument("--hosts", type=int, default=2, help="CaseForum hosts [2]")
    group = parser.add_argument_group("workers and big")
    group.add_argument("--dossiers", type=int, default=None,
                       help="workers: filler dossiers [10000; --quick 2000]; big: dossiers "
                            "generated [1000000; --quick 50000]")
    group = parser.add_argument_group("big")
    group.add_argument("--requests", type=int, default=None,
                       help="random dossiers read per endpoint [1000; --quick 200]")
    group.add_argument("--max-seconds", type=float, default=None,
                       help="time bound per endpoint [120; --quick 20]")
    group.add_argument("--index-sample", type=int, default=None,
                       help="dossiers indexed to time the search indexer [2000; --quick 300]")
    group.add_argument("--keep", default=None, metavar="NAME",
                       help="the database's name; kept at the end and reused when it is "
                            "there (then --dossiers is not generated again)")
    args = parser.parse_args(argv)
    quick = args.quick

    def default(name: str, full: Any, short: Any) -> None:
        if getattr(args, name) is None:
            setattr(args, name, short if quick else full)

    default("clients", 16, 8)
    default("seconds", 20.0, 3.0)
    default("warmup", 3.0, 0.5)
    default("watchers", 1000, 200)
    default("messages", 30, 10)
    default("requests", 1000, 200)
    default("max_seconds", 120.0, 20.0)
    default("index_sample", 2000, 300)
    if args.dossiers is not None and args.dossiers < 0:
        parser.error("--dossiers: 0 or more")
    if not args.workers or any(not 1 <= n <= 16 for n in args.workers):
        parser.error("--workers: counts from 1 to 16")
    args.workers = sorted(set(args.workers))
    args.endpoints = [{"api": API, "page": PAGE}[e] for e in dict.fromkeys(args.endpoints)]
    if not 1 <= args.client_processes <= args.clients <= 256:
        parser.error("--clients 1..256, at least --client-processes")
    if not 1 <= args.watchers <= 5000 or not 1 <= args.messages <= 1000:
        parser.error("--watchers 1..5000, --messages 1..1000")
    if not 1 <= args.hosts <= 8:
        parser.error("--hosts 1..8")
    if args.seconds <= 0 or args.rounds < 1 or args.requests < 1:
        parser.error("--seconds, --rounds and --requests must be positive")
    if args.keep is not None and args.mode != "big":
        parser.error("--keep is for the big mode")
    return args


def reachable(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--postgres`` or ``--redis``, if anything."""
    import psycopg
    import redis

    try:
        psycopg.connect(plain_dsn(args.postgres), connect_timeout=5).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at --postgres {args.postgres}: {str(exc).strip()}"
    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=5).ping()
    except (redis.RedisError, ValueError) as exc:
        return f"no Redis at --redis {args.redis}: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    exit_on_sigterm()
    problem = reachable(args)
    if problem:
        print(f"scale_bench: {problem}", file=sys.stderr)
        return 2

    def log(text: str) -> None:
        print(text, flush=True)

    modes = [args.mode] if args.mode else ["workers", "watchers", "big"]
    status = 0
    started = time.perf_counter()
    try:
        for mode in modes:
            t0 = time.perf_counter()
            if mode == "workers":
                dossiers = args.dossiers if args.dossiers is not None else \
                    (2000 if args.quick else 10_000)
                workers_mode(argparse.Namespace(**{**vars(args), "dossiers": dossiers}), log)
            elif mode == "watchers":
                status |= watchers_mode(args, log)
            else:
                dossiers = args.dossiers if args.dossiers is not None else \
                    (50_000 if args.quick else 1_000_000)
                big_mode(argparse.Namespace(**{**vars(args), "dossiers": dossiers}), log)
            log(f"\n{mode}: {time.perf_counter() - t0:.0f} s")
    except KeyboardInterrupt:
        return 130
    log(f"Total run time {time.perf_counter() - started:.0f} s; {conditions()}.")
    return status


if __name__ == "__main__":
    sys.exit(main())
