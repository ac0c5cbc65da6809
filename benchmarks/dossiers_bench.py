"""Dossier page and API latency with many dossiers loaded.

Builds a throw-away SQLite database (WAL) with the demo families plus filler
dossiers up to ``--dossiers`` (bulk-inserted: families, priorities, PCT
links, documents with visibilities and text, citations sharing prior art),
starts the app with one uvicorn worker on a free loopback port, and times
``GET /dossiers/{office}/{number}`` (logged-in examiner, cookie session) and
``GET /api/v1/dossiers/{office}/{number}`` (bearer token) for random dossiers.

    .venv/bin/python benchmarks/dossiers_bench.py --dossiers 10000 --requests 500

The server runs in a thread of this process by default (as the test suite's
live server does), so client and server share one GIL; ``--subprocess``
starts ``caseforum serve`` in its own process instead, which is closer to a
real deployment.  ``--profile`` runs the page handler under cProfile in
process and prints where the time goes.

The API is measured against a bare anchor in the same run: a FastAPI app with
one plain ``def`` route returning the same JSON from memory, timed alternately
with CaseForum request by request; the ratio of their rates is printed (and,
with ``--subprocess``, the server CPU time per request of each).  ``--quick``
measures only the API and its anchor (one client, 200 requests).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchlib import summary
from sqlalchemy import func, insert
from sqlmodel import select

from caseforum import accounts
from caseforum.app import build_doc_types, create_app
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import (
    Application,
    Citation,
    Document,
    DocumentOffice,
    Family,
    Priority,
    User,
)
from caseforum.numbers import parse_application_number, parse_publication_number
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import DEMO_PASSWORD, init_database, load_demo

API_NAME = "API GET /api/v1/dossiers/{office}/{number}"
ANCHOR_NAME = "bare FastAPI anchor, same JSON (plain def route)"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
OFFICES = ("JP", "CN", "KR", "US", "AU", "GB")
DOC_PLAN = (  # a typical prosecution: (code, days after filing)
    ("CLM", 0), ("SRPT", 300), ("CTNF", 420), ("AMND", 520), ("REM", 520),
    ("CTFR", 700), ("NOA", 820), ("PPH", 380), ("SRNT", 420),
)
WORDS = (
    "claim", "electrolyte", "lane", "display", "trough", "sensor", "layer", "substrate",
    "method", "device", "wherein", "comprising", "ratio", "region", "pixel", "controller",
    "inventive", "novelty", "cited", "document", "amended", "reasons", "refusal", "allowance",
    "examiner", "applicant",
)


# Building the database -----------------------------------------------------------------


def _number(office: str, year: int, serial: int) -> str:
    """A normalised application number in the office's layout."""
    if office == "US":
        return f"{15 + year % 4}{serial:06d}"
    if office == "CN":
        return f"{year}1{serial:07d}"
    if office == "KR":
        return f"10{year}{serial:07d}"
    if office == "GB":
        return f"2{serial:06d}"
    return f"{year}{serial:06d}"  # JP, AU


def _publication(office: str, year: int, serial: int) -> str:
    if office == "US":
        return f"US{year}0{serial:06d}"
    if office == "CN":
        return f"CN1{serial:08d}"
    if office == "KR":
        return f"KR10{year}{serial:07d}"
    if office == "GB":
        return f"GB2{serial:06d}"
    if office == "IB":
        return f"WO{year}{serial:06d}"
    return f"{office}{year}{serial:06d}"


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def add_filler(engine: Any, count: int, *, text_bytes: int, seed: int = 7) -> dict[str, int]:
    """Bulk-insert ``count`` dossiers in families of one to four offices, about a
    fifth of them with a PCT application at the IB.  Rows only (no events, no
    files): the pages read rows, never files."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with open_session(engine) as session:
        used = {(a.office_code, a.number) for a in session.exec(select(Application))}
        next_ids = {m: (session.exec(select(func.max(m.id))).one() or 0) + 1
                    for m in (Family, Application, Document)}
    layouts = ("WO {y}/{s:06d} A1", "US {y}/0{s:06d} A1", "JP {y}-{s:06d} A",
               "CN 1{s:08d} A", "KR 10-{y}-{s:07d} A")
    prior_art = []  # 3,000 earlier publications, so that dossiers share citations
    for layout in layouts:
        for _ in range(600):
            text = layout.format(y=rng.randint(2005, 2018), s=rng.randint(100000, 999999))
            pub = parse_publication_number(text)
            prior_art.append((text, pub.office + pub.number))
    families, apps, prios, docs, named, cites = [], [], [], [], [], []
    fam_id, app_id, doc_id = next_ids[Family], next_ids[Application], next_ids[Document]
    serial = 600000
    made = 0
    while made < count:
        size = min(rng.choice((1, 1, 2, 2, 3, 3, 4)), count - made)
        offices = rng.sample(OFFICES, size)
        first = date(2015, 1, 1) + timedelta(days=rng.randint(0, 6 * 365))
        pct = None
        if size >= 2 and rng.random() < 0.25:
            serial += 1
            pct = f"{offices[0]}{first.year + 1}{serial:06d}"
            offices = [offices[0], "IB", *offices[1:]]
        families.append({"id": fam_id, "created_at": now})
        root: tuple[str, str, date] | None = None
        for position, office in enumerate(offices):
            if made >= count:
                break
            serial += 1
            filing = first if position == 0 else first + timedelta(days=360)
            year = filing.year
            if office == "IB" and pct:
                number, kind = pct, "pct"
                display = f"PCT/{pct[:2]}{pct[2:6]}/{pct[6:]}"
            else:
                number, kind = _number(office, year, serial), "national"
                display = parse_application_number(number, office=office).display
            if (office, number) in used:
                continue
            used.add((office, number))
            pub = _publication(office, year + 1, serial)
            apps.append({
                "id": app_id, "office_code": office, "number": number,
                "display_number": display, "kind": kind, "filing_date": filing,
                "publication_number": pub, "publication_display": pub,
                "publication_date": filing + timedelta(days=540), "title": _text(rng, 80),
                "applicants": [f"Filler Industries {rng.randint(1, 900)} Ltd."],
                "ipc": ["H01M 10/0562", "G06F 17/00"][: rng.randint(1, 2)], "cpc": [],
                "pct_number": pct if office != "IB" and position > 0 else None,
                "family_id": fam_id, "source": "hosted", "source_ref": "bench",
                "created_at": now, "updated_at": now,
            })
            if root is None:
                root = (office, number, filing)
            else:  # later filings (the PCT one too) claim the first
                prios.append({"application_id": app_id, "office_code": root[0],
                              "number": root[1], "display_number": root[1], "date": root[2]})
            search_ids = []
            for code, days in rng.sample(DOC_PLAN, rng.randint(4, len(DOC_PLAN))):
                roll = rng.random()
                visibility = "public" if roll < 0.1 else "restricted" if roll < 0.2 else "offices"
                docs.append({
                    "id": doc_id, "application_id": app_id, "code": code,
                    "date": min(filing + timedelta(days=days), date.today()),
                    "language": "en", "is_translation": False,
                    "media_type": "application/pdf", "size": 40_000 + rng.randint(0, 400_000),
                    "sha256": f"{doc_id:064x}", "filename": f"{code.lower()}.pdf",
                    "pages": rng.randint(1, 30), "visibility": visibility,
                    "text_content": _text(rng, text_bytes), "created_at": now,
                })
                if visibility == "restricted":
                    named += [{"document_id": doc_id, "office_code": o}
                              for o in rng.sample(("JP", "KR", "CN", "AU", "GB"), 2)]
                if code in ("SRPT", "CTNF", "CTFR"):
                    search_ids.append(doc_id)
                doc_id += 1
            for _ in range(rng.randint(1, 5)):
                cited, cited_number = rng.choice(prior_art)
                cites.append({
                    "application_id": app_id, "document_id": rng.choice(search_ids or [None]),
                    "cited": cited, "cited_number": cited_number,
                    "category": rng.choice(("X", "Y", "A", "A", "X,Y")),
                    "claims": f"1-{rng.randint(2, 20)}", "phase": "search",
                    "citing_office": office, "created_at": now,
                })
            app_id += 1
            made += 1
        fam_id += 1
    with engine.begin() as conn:
        for model, rows in ((Family, families), (Application, apps), (Priority, prios),
                            (Document, docs), (DocumentOffice, named), (Citation, cites)):
            for start in range(0, len(rows), 5000):
                conn.execute(insert(model.__table__), rows[start:start + 5000])  # type: ignore[attr-defined]
    return {"dossiers": len(apps), "documents": len(docs), "citations": len(cites),
            "families": len(families)}


def build_database(folder: Path, dossiers: int, text_bytes: int) -> Settings:
    settings = load_settings(data_dir=folder, secret_key="b" * 32)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    with open_session(engine) as session:
        present = session.exec(select(func.count()).select_from(Application)).one()
    started = time.perf_counter()
    counts = add_filler(engine, max(0, dossiers - present), text_bytes=text_bytes)
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    print(f"filler: {counts} in {time.perf_counter() - started:.1f}s "
          f"(+{present} demo dossiers)", file=sys.stderr)
    return settings


# Serving ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadServer:
    """uvicorn in a thread of this process, like the tests' live server."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port,
                                log_level="warning", workers=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ProcessServer:
    """``caseforum serve`` in its own process: no GIL shared with the client."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        env = {**os.environ, "CASEFORUM_DATA_DIR": str(settings.data_dir),
               "CASEFORUM_SECRET_KEY": "b" * 32}
        self.log = settings.data_dir / "serve.log"
        with self.log.open("wb") as log:  # a file, not a pipe nobody reads
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caseforum", "serve", "--port", str(self.port)],
                env=env, stdout=subprocess.DEVNULL, stderr=log)

    def start(self) -> ProcessServer:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("caseforum serve did not start:\n"
                           + self.log.read_text(errors="replace")[-2000:])

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (Linux): less noisy than wall time
        on a shared machine."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# The bare anchor --------------------------------------------------------------------------

BARE_APP = """
import json, pathlib
from typing import Any
from fastapi import FastAPI, HTTPException

BODIES = json.loads((pathlib.Path(__file__).parent / "bodies.json").read_text())
app = FastAPI()


@app.get("/api/v1/dossiers/{office}/{number}")
def dossier(office: str, number: str) -> Any:
    body = BODIES.get(f"{office}/{number}")
    if body is None:
        raise HTTPException(status_code=404)
    return body
"""


def write_bare_app(folder: Path, bodies: dict[str, Any]) -> Path:
    """A FastAPI app with one plain ``def`` route that answers the same JSON for the
    same URLs, from memory: what CaseForum's API costs beyond FastAPI itself."""
    import json

    bare = folder / "bare_anchor"
    bare.mkdir(exist_ok=True)
    (bare / "bodies.json").write_text(json.dumps(bodies))
    (bare / "bare_app.py").write_text(BARE_APP)
    return bare


class BareThreadServer(ThreadServer):
    def __init__(self, folder: Path) -> None:  # noqa: D107 - same serving as ThreadServer
        import importlib.util

        import uvicorn

        spec = importlib.util.spec_from_file_location("bare_app", folder / "bare_app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.port = free_port()
        config = uvicorn.Config(module.app, host="127.0.0.1", port=self.port,
                                log_level="warning", workers=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


class BareProcessServer(ProcessServer):
    def __init__(self, folder: Path) -> None:  # noqa: D107 - same serving as ProcessServer
        self.port = free_port()
        self.log = folder / "serve.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(folder), "bare_app:app",
                 "--port", str(self.port), "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=log)

    def start(self) -> BareProcessServer:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/api/v1/dossiers/X/0")
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the bare anchor did not start")


def cpu_of(server: Any) -> float | None:
    return server.cpu_seconds() if hasattr(server, "cpu_seconds") else None


# Measuring -------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: list[float]
    errors: int
    wall: float

    paired: bool = False

    @property
    def rate(self) -> float:
        """Requests per second: over the wall time, or, when timed alternately with
        another endpoint, clients / mean latency (the wall time is shared)."""
        if self.paired:
            total = sum(self.latencies)
            return self.concurrency * len(self.latencies) / total if total else 0.0
        return len(self.latencies) / self.wall if self.wall else 0.0

    def p(self, percent: float) -> float:
        ms = sorted(x * 1000 for x in self.latencies)
        return ms[min(len(ms) - 1, int(round(percent / 100 * (len(ms) - 1))))] if ms else 0.0

    def row(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return f"| {self.name} | {self.concurrency} | 0 | {self.errors} | - | - | - | - | - |"

        def pct(p: float) -> float:
            return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]

        return (f"| {self.name} | {self.concurrency} | {len(ms)} | {self.errors} | "
                f"{statistics.median(ms):.1f} | {pct(95):.1f} | {pct(99):.1f} | {ms[-1]:.1f} | "
                f"{self.rate:.1f} |")


def login(client: httpx.Client, username: str) -> None:
    token = CSRF_RE.search(client.get("/login").text)
    assert token, "no CSRF token on the login page"
    response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD,
                                           "csrf_token": token.group(1)})
    if response.status_code != 303:
        raise RuntimeError(f"log-in failed: {response.status_code} {response.text[:200]}")


def bearer(settings: Settings, username: str) -> str:
    engine = make_engine(settings)
    with open_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        _, plain = accounts.create_token(session, user=user, scopes=["dossiers:read"])
        session.commit()
    engine.dispose()
    return plain


def targets(settings: Settings, n: int, seed: int = 11) -> list[tuple[str, str]]:
    engine = make_engine(settings)
    with open_session(engine) as session:
        # IB dossiers are left out: their page URL (/dossiers/IB/JP2020009517) answers
        # 404 because get_dossier cannot read a normalised PCT number (see PERFORMANCE.md)
        rows = session.exec(select(Application.office_code, Application.number)
                            .where(Application.office_code != "IB")).all()
    engine.dispose()
    rng = random.Random(seed)
    return [rng.choice(rows) for _ in range(n)]


def run(name: str, make_client: Callable[[], httpx.Client], paths: list[str], *,
        concurrency: int, max_seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    chunks = [paths[i::concurrency] for i in range(concurrency)]

    def worker(chunk: list[str]) -> None:
        nonlocal errors
        client = make_client()
        try:
            for path in chunk[:5]:  # warm-up: connections, caches
                client.get(path)
            for path in chunk:
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors += 1
        finally:
            client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, chunks))
    return Result(name, concurrency, latencies, errors, time.perf_counter() - started)


def run_paired(names: tuple[str, str], makers: tuple[Callable[[], httpx.Client], ...],
               paths: list[str], *, concurrency: int, max_seconds: float) -> tuple[Result, Result]:
    """Like :func:`run`, but every path is requested from both servers in turn (the
    order swapping each time), so that noise from a shared machine hits both alike."""
    latencies: tuple[list[float], list[float]] = ([], [])
    errors = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    chunks = [paths[i::concurrency] for i in range(concurrency)]

    def worker(chunk: list[str]) -> None:
        clients = [make() for make in makers]
        try:
            for path in chunk[:5]:
                for client in clients:
                    client.get(path)
            for turn, path in enumerate(chunk):
                if time.monotonic() > deadline:
                    return
                for arm in ((0, 1) if turn % 2 == 0 else (1, 0)):
                    start = time.perf_counter()
                    response = clients[arm].get(path)
                    elapsed = time.perf_counter() - start
                    with lock:
                        if response.status_code == 200:
                            latencies[arm].append(elapsed)
                        else:
                            errors[arm] += 1
        finally:
            for client in clients:
                client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, chunks))
    wall = time.perf_counter() - started
    return (Result(names[0], concurrency, latencies[0], errors[0], wall, paired=True),
            Result(names[1], concurrency, latencies[1], errors[1], wall, paired=True))


def profile_requests(settings: Settings, page_paths: list[str], api_paths: list[str],
                     token: str) -> None:
    """Run the requests in process (TestClient, no network) with every function
    that FastAPI hands to its thread pool (sync dependencies, routes, response
    validation) under cProfile, to see where a request's time goes."""
    import cProfile
    import functools
    import pstats

    import fastapi.dependencies.utils
    import fastapi.routing
    from fastapi.testclient import TestClient
    from starlette.concurrency import run_in_threadpool

    collected: list[pstats.Stats] = []
    lock = threading.Lock()

    def profiled(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(func, *args, **kwargs)
        finally:
            with lock:
                collected.append(pstats.Stats(profiler))

    async def run_profiled(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(functools.partial(profiled, func), *args, **kwargs)

    fastapi.routing.run_in_threadpool = run_profiled  # type: ignore[assignment]
    fastapi.dependencies.utils.run_in_threadpool = run_profiled  # type: ignore[assignment]
    app = create_app(settings.model_copy(update={"run_consumers": False}))
    with TestClient(app) as client:
        token_match = CSRF_RE.search(client.get("/login").text)
        assert token_match
        client.post("/login", data={"username": "kr.examiner", "password": DEMO_PASSWORD,
                                     "csrf_token": token_match.group(1)})
        for label, paths, headers in (("dossier page", page_paths, {}),
                                      ("dossier API", api_paths,
                                       {"Authorization": f"Bearer {token}"})):
            for path in paths[:10]:
                client.get(path, headers=headers)
            collected.clear()
            started = time.perf_counter()
            for path in paths:
                client.get(path, headers=headers)
            each = (time.perf_counter() - started) / len(paths) * 1000
            stats = collected[0]
            for more in collected[1:]:
                stats.add(more)
            print(f"\n=== {label}: {len(paths)} requests, {each:.1f} ms each in all "
                  "(profiled) ===")
            stats.sort_stats("cumulative").print_stats(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500, help="per endpoint and run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4],
                        help="client threads; one run per value")
    parser.add_argument("--max-seconds", type=float, default=60,
                        help="time bound per endpoint and run")
    parser.add_argument("--text-kb", type=float, default=4,
                        help="extracted text per filler document (kB)")
    parser.add_argument("--subprocess", action="store_true",
                        help="serve from a separate 'caseforum serve' process")
    parser.add_argument("--profile", action="store_true",
                        help="profile the page and API in process instead of timing")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the database here and keep it")
    parser.add_argument("--quick", action="store_true",
                        help="the dossier API and its bare anchor only, 1 client, "
                             "200 requests (unless --requests is given)")
    args = parser.parse_args()
    if args.quick:
        args.concurrency = [1]
        if "--requests" not in sys.argv:
            args.requests = 200

    folder = args.keep or Path(tempfile.mkdtemp(prefix="cf-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith("CASEFORUM_")]:
        del os.environ[key]
    try:
        started = time.perf_counter()
        if (folder / "caseforum.db").exists():
            settings = load_settings(data_dir=folder, secret_key="b" * 32)
        else:
            settings = build_database(folder, args.dossiers, int(args.text_kb * 1024))
        print(f"database ready in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        token = bearer(settings, "kr.examiner")
        picks = targets(settings, args.requests)
        page_paths = [f"/dossiers/{o}/{n}" for o, n in picks]
        api_paths = [f"/api/v1/dossiers/{o}/{n}" for o, n in picks]
        family_paths = ["/dossiers/JP/2019041872"] * args.requests  # 7 members, 28 documents
        if args.profile:
            profile_requests(settings, page_paths[:200], api_paths[:200], token)
            return
        server = (ProcessServer if args.subprocess else ThreadServer)(settings).start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            def examiner() -> httpx.Client:
                client = httpx.Client(base_url=base, timeout=30)
                login(client, "kr.examiner")
                return client

            def machine() -> httpx.Client:
                return httpx.Client(base_url=base, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})

            with machine() as client:  # what the anchor will answer, URL by URL
                bodies = {path.removeprefix("/api/v1/dossiers/"): client.get(path).json()
                          for path in set(api_paths)}
            bare = (BareProcessServer if args.subprocess else BareThreadServer)(
                write_bare_app(folder, bodies)).start()

            def plain() -> httpx.Client:
                return httpx.Client(base_url=f"http://127.0.0.1:{bare.port}", timeout=30)

            results = []
            pairs: dict[int, tuple[Result, Result]] = {}
            cpu: dict[int, tuple[float, float]] = {}
            try:
                for concurrency in args.concurrency:
                    if not args.quick:
                        results.append(run("page GET /dossiers/{office}/{number}", examiner,
                                           page_paths, concurrency=concurrency,
                                           max_seconds=args.max_seconds))
                    before = cpu_of(server), cpu_of(bare)
                    pairs[concurrency] = run_paired(
                        (API_NAME, ANCHOR_NAME), (machine, plain), api_paths,
                        concurrency=concurrency, max_seconds=args.max_seconds)
                    if before[0] is not None and before[1] is not None:
                        cpu[concurrency] = (cpu_of(server) - before[0],  # type: ignore[operator]
                                            cpu_of(bare) - before[1])  # type: ignore[operator]
                    results.extend(pairs[concurrency])
                    if not args.quick:
                        results.append(run("page, largest demo family (JP 2019-041872)",
                                           examiner, family_paths, concurrency=concurrency,
                                           max_seconds=args.max_seconds))
            finally:
                bare.stop()
        finally:
            server.stop()
        engine = make_engine(settings)
        with open_session(engine) as session:
            total = session.exec(select(func.count()).select_from(Application)).one()
            documents = session.exec(select(func.count()).select_from(Document)).one()
        engine.dispose()
        print(f"\n{total} dossiers, {documents} documents; SQLite WAL; Python "
              f"{platform.python_version()}; {os.cpu_count()} CPUs; one uvicorn worker "
              f"({'own process' if args.subprocess else 'thread in the client process'})\n")
        print("| endpoint | clients | requests | errors | p50 ms | p95 ms | p99 ms | max ms "
              "| req/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for result in results:
            print(result.row())
        print()
        print("The API and its anchor were timed alternately, request by request, so that a "
              "busy machine slows both alike;\nreq/s for them is clients / mean latency.\n")
        for concurrency, (ours, anchor) in pairs.items():
            ratio = ours.rate / anchor.rate if anchor.rate else 0.0
            print(f"dossier API, {concurrency} client(s): CaseForum {ours.rate:.1f} req/s "
                  f"(p95 {ours.p(95):.1f} ms), bare anchor {anchor.rate:.1f} req/s "
                  f"(p95 {anchor.p(95):.1f} ms): ratio {ratio:.3f}")
            summary(f"dossier API at {total:,} dossiers, {concurrency} client(s)", ours.rate,
                    anchor.rate, ">= 0.30", "req/s")
            summary(f"dossier API p95, {concurrency} client(s)", ours.p(95), anchor.p(95),
                    "< 20 ms", "ms", higher_is_better=False)
            if concurrency in cpu:
                ours_ms = cpu[concurrency][0] / max(1, len(ours.latencies)) * 1000
                anchor_ms = cpu[concurrency][1] / max(1, len(anchor.latencies)) * 1000
                print(f"  server CPU per request: CaseForum {ours_ms:.2f} ms, bare anchor "
                      f"{anchor_ms:.2f} ms: ratio {anchor_ms / ours_ms if ours_ms else 0:.3f}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
