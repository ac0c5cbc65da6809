"""Index lag: does the search indexer keep up with posts arriving at a steady rate?

The issue's goal is 50 new posts per second.  Two servers run in their own process,
one after the other, and one client drives both the same way:

1. A poster sends ``--rate`` posts per second for ``--seconds`` seconds on an open-loop
   schedule (post ``k`` is due at ``k / rate`` s, whether or not earlier answers
   came), each carrying a unique word.  CaseForum: ``POST /api/v1/threads/{id}/posts``
   with an examiner's bearer token, so the post goes through the forum service, the
   event log, the live hub and then the ``search-indexer`` consumer (which commits at
   most once a second).  Bare anchor: a Starlette app that inserts the post into a
   SQLite table and an FTS5 table in the same transaction (searchable at once).
2. A searcher asks for the oldest post not yet found, by its word, through the
   search API (CaseForum: ``GET /api/v1/search``, the permission filter and facets
   included), every 50 ms, and records when each post first appears.

Printed: the posting rate reached, the time from sending a post until a search finds
it (p50, p95, max), the backlog at the end (how long after the last post the last
one was found), server CPU.  The indexer keeps up when the lag stays flat: its p95
near the one-second commit interval and the last post found within a few seconds.

    .venv/bin/python benchmarks/index_lag_bench.py              # 50 posts/s for 60 s
    .venv/bin/python benchmarks/index_lag_bench.py --quick      # 50 posts/s for 10 s
    .venv/bin/python benchmarks/index_lag_bench.py --rate 100   # find where it stops

Only loopback traffic; the data folder is temporary and both servers are stopped at
the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import conditions, exit_on_sigterm, summary, wait_for_consumers
from fanout_bench import SECRET, Server, pct
from fanout_bench import build as build_room

#: the bare anchor's database (set in its process by the environment)
BARE_DB = "INDEX_LAG_BARE_DB"


def build(data_dir: Path) -> dict[str, Any]:
    """The fan-out benchmark's demo instance: one thread and one examiner's token."""
    thread_id, tokens = build_room(data_dir, 1, lambda text: print(text, flush=True))["rooms"][0]
    return {"thread_id": thread_id, "token": tokens[0][1]}


def bare_app() -> Any:
    """Factory for ``uvicorn --factory index_lag_bench:bare_app``: posts into SQLite and
    FTS5 in one transaction; a search counts the matches."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    path = os.environ[BARE_DB]
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS post (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS post_fts USING fts5(body,"
               " tokenize='porter unicode61')")

    async def add(request: Request) -> JSONResponse:
        body = (await request.json())["body"]
        db.execute("BEGIN IMMEDIATE")
        cur = db.execute("INSERT INTO post (body) VALUES (?)", [body])
        db.execute("INSERT INTO post_fts (rowid, body) VALUES (?, ?)", [cur.lastrowid, body])
        db.execute("COMMIT")
        return JSONResponse({"id": cur.lastrowid}, status_code=201)

    async def find(request: Request) -> JSONResponse:
        q = request.query_params["q"]
        total = db.execute("SELECT count(*) FROM post_fts WHERE post_fts MATCH ?",
                           [q]).fetchone()[0]
        return JSONResponse({"total": total})

    return Starlette(routes=[Route("/posts", add, methods=["POST"]),
                             Route("/search", find)])


@dataclass
class Result:
    name: str
    sent: list[float] = field(default_factory=list)  # when post k was sent
    answers: list[float] = field(default_factory=list)  # its POST's answer time
    found: dict[int, float] = field(default_factory=dict)  # k -> when first found
    searches: int = 0
    failures: int = 0
    busy: int = 0  # searches answered 503 (server busy)
    posting_seconds: float = 0.0
    cpu: float | None = None

    def lags(self) -> list[float]:
        return [self.found[k] - self.sent[k] for k in self.found]


async def drive(name: str, post: Any, search: Any, args: argparse.Namespace,
                run_id: str) -> Result:
    """Post on schedule while searching for the oldest post not yet found."""
    res = Result(name)
    total = int(args.rate * args.seconds)
    res.sent = [0.0] * total
    posted = asyncio.Event()
    sending: set[asyncio.Task[None]] = set()

    async def one(k: int) -> None:
        began = time.perf_counter()
        res.sent[k] = began
        try:
            await post(f"Index check ix{run_id}n{k}z: the search report of this family "
                       f"cites two documents against claims 1-{3 + k % 5}.")
        except Exception:  # noqa: BLE001  (counted and reported)
            res.failures += 1
        res.answers.append(time.perf_counter() - began)

    async def poster() -> None:
        start = time.perf_counter()
        for k in range(total):
            delay = start + k / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(k))
            sending.add(task)
            task.add_done_callback(sending.discard)
        await asyncio.gather(*list(sending))
        res.posting_seconds = time.perf_counter() - start
        posted.set()

    async def searcher() -> None:
        k = 0
        deadline: float | None = None
        while k < total:
            if posted.is_set() and deadline is None:
                deadline = time.perf_counter() + args.drain
            if deadline is not None and time.perf_counter() > deadline:
                break
            if not res.sent[k]:
                await asyncio.sleep(0.01)
                continue
            res.searches += 1
            if args.verbose and res.searches % 100 == 0:
                print(f"  {name}: {res.searches} searches, post {k} of {total}, "
                      f"{len(sending)} posts in flight", flush=True)
            if await search(f"ix{run_id}n{k}z"):
                res.found[k] = time.perf_counter()
                k += 1
                continue
            await asyncio.sleep(0.05)

    await asyncio.gather(poster(), searcher())
    return res


def report(results: list[Result], args: argparse.Namespace) -> None:
    total = int(args.rate * args.seconds)
    print(f"\n{total} posts at {args.rate:g}/s for {args.seconds:g} s")
    print("| server | posted/s | POST p50 ms | POST p95 ms | found | lag p50 s | lag p95 s | "
          "lag max s | last found after the last post, s | server CPU s | searches | "
          "failed posts | busy (503) searches |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lags = r.lags()
        tail = (r.found[total - 1] - r.sent[total - 1]) if (total - 1) in r.found else \
            float("nan")
        print(f"| {r.name} | {total / r.posting_seconds:.1f} | "
              f"{pct(r.answers, 50) * 1000:.0f} | {pct(r.answers, 95) * 1000:.0f} | "
              f"{len(r.found)}/{total} | {pct(lags, 50):.2f} | {pct(lags, 95):.2f} | "
              f"{max(lags, default=float('nan')):.2f} | {tail:.2f} | "
              f"{r.cpu if r.cpu is not None else float('nan'):.1f} | {r.searches} | "
              f"{r.failures} | {r.busy} |")
    for r in results:  # the lag over the run: does it grow, settle or shrink?
        per = [pct([r.found[k] - r.sent[k] for k in r.found
                    if int(k / args.rate / step) == i], 95)
               for step in [max(1.0, args.seconds / 10)]
               for i in range(int(args.seconds / step))]
        print(f"{r.name}: lag p95 by stretch of the run (s): "
              + " ".join(f"{x:.2f}" for x in per))
    cf, bare = results
    summary(f"search index lag p95 at {args.rate:g} posts/s", pct(cf.lags(), 95),
            pct(bare.lags(), 95), "keeps up (p95 < 3 s)", "s", higher_is_better=False)


async def measure_caseforum(server: Server, info: dict[str, Any],
                            args: argparse.Namespace) -> Result:
    token = info["token"]
    res_busy: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60,
                                 limits=limits) as client:
        async def post(body: str) -> None:
            r = await client.post(f"/api/v1/threads/{info['thread_id']}/posts",
                                  json={"body": body})
            r.raise_for_status()

        async def search(word: str) -> bool:
            r = await client.get("/api/v1/search", params={"q": word})
            if r.status_code == 503:  # every request slot taken: ask again shortly
                res_busy.append(word)
                return False
            r.raise_for_status()
            return bool(r.json()["total"])

        # the first answers start the consumers; the indexer builds the index at its
        # first round (search answers 503 until then), then finds the warm-up post
        await post("warm-up post ixwarmz")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = await client.get("/api/v1/search", params={"q": "ixwarmz"})
            if r.status_code == 200 and r.json()["total"]:
                break
            await asyncio.sleep(0.2)
        spy = None
        if args.profile:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(server.proc.pid), "--format", "raw", "--rate", "100",
                 "--nonblocking", "-o", str(args.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        cpu0 = server.cpu_seconds()
        res = await drive("CaseForum", post, search, args, "cf")
        cpu1 = server.cpu_seconds()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        res.busy = len(res_busy)
        res.cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return res


async def measure_bare(server: Server, args: argparse.Namespace) -> Result:
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def post(body: str) -> None:
            (await client.post("/posts", json={"body": body})).raise_for_status()

        async def search(word: str) -> bool:
            r = await client.get("/search", params={"q": word})
            r.raise_for_status()
            return bool(r.json()["total"])

        cpu0 = server.cpu_seconds()
        res = await drive("bare", post, search, args, "bare")
        cpu1 = server.cpu_seconds()
        res.cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return res


def indexer_rounds(args: argparse.Namespace, workdir: Path) -> int:
    """The indexer alone, in this process: rounds of ``--rate`` new posts (what one
    second brings at that rate), each applied by the search-indexer consumer as its
    once-a-second round does, beside FTS5 taking the same posts' rows.  With
    ``--index DIR`` the rounds go into a copy of a large index (``search_bench.py
    --keep DIR`` builds one: ``DIR/search``), where Whoosh's segment merges cost more."""
    from sqlmodel import select

    from caseforum.config import load_settings
    from caseforum.db import make_engine, open_session
    from caseforum.forum import service as forum
    from caseforum.models import Post, Thread, User
    from caseforum.plugin_host import PluginHost
    from caseforum.search import store
    from caseforum.search.indexer import SearchIndexer, rebuild

    data_dir = workdir / "data"
    info = build(data_dir)
    settings = load_settings(data_dir=data_dir, secret_key=SECRET)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    folder = workdir / "search"
    if args.index:
        began = time.perf_counter()
        shutil.copytree(args.index / "search", folder)
        print(f"  copied the index in {args.index / 'search'} "
              f"({store.item_count(store.open_index(folder)):,} items): "
              f"{time.perf_counter() - began:.1f} s", flush=True)
    else:
        rebuild(engine, folder)
    indexer = SearchIndexer(folder)
    began = time.perf_counter()
    indexer.process(engine)  # the demo data's events (and the first warm-up)
    print(f"  first round (the demo data's events, warm-up): "
          f"{time.perf_counter() - began:.1f} s", flush=True)
    fts = sqlite3.connect(workdir / "fts.db", isolation_level=None)
    fts.execute("PRAGMA journal_mode=WAL")
    fts.execute("CREATE VIRTUAL TABLE post_fts USING fts5(body, tokenize='porter unicode61')")
    fts.execute("CREATE VIRTUAL TABLE post_cjk USING fts5(body, tokenize='trigram')")
    per = int(args.rate)
    ours: list[float] = []
    bare: list[float] = []
    ours_cpu: list[float] = []  # this process's CPU: what a loaded machine does not inflate
    bare_cpu: list[float] = []
    with open_session(engine) as session:
        author = session.exec(select(User).join(Thread, Thread.author_id == User.id)
                              .where(Thread.id == info["thread_id"])).one()
    for n in range(args.rounds):
        with open_session(engine) as session:
            thread = session.get(Thread, info["thread_id"])
            user = session.get(User, author.id)
            ids = []
            for k in range(per):
                post = forum.add_post(
                    session, author=user, thread=thread,  # type: ignore[arg-type]
                    body=f"Round {n} post {k}: the search report of this family cites two "
                         f"documents against claims 1-{3 + k % 5}; 固体電解質の粒子径.",
                    patterns=host.reference_patterns())
                session.commit()
                ids.append(post.id)
        began, cpu = time.perf_counter(), time.process_time()
        applied = indexer.process(engine)
        ours.append(time.perf_counter() - began)
        ours_cpu.append(time.process_time() - cpu)
        assert applied >= per, f"the indexer applied {applied} events, expected {per}+"
        began, cpu = time.perf_counter(), time.process_time()
        with open_session(engine) as session:
            rows = session.exec(select(Post.id, Post.body).where(Post.id.in_(ids))).all()  # type: ignore[union-attr]
        fts.execute("BEGIN")
        fts.executemany("INSERT INTO post_fts (rowid, body) VALUES (?, ?)", rows)
        fts.executemany("INSERT INTO post_cjk (rowid, body) VALUES (?, ?)", rows)
        fts.execute("COMMIT")
        bare.append(time.perf_counter() - began)
        bare_cpu.append(time.process_time() - cpu)
    size = store.item_count(store.open_index(folder))
    print(f"\n{args.rounds} rounds of {per} new posts (one second's worth at "
          f"{args.rate:g} posts/s), index of {size:,} items at the end")
    print("| engine | round p50 ms | round p95 ms | round max ms | CPU p50 ms | CPU p95 ms | "
          "posts/s at the round p95 | posts/s at the CPU p95 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, times, cpus in (("CaseForum indexer", ours, ours_cpu),
                              ("bare FTS5", bare, bare_cpu)):
        print(f"| {name} | {pct(times, 50) * 1000:.0f} | {pct(times, 95) * 1000:.0f} | "
              f"{max(times) * 1000:.0f} | {pct(cpus, 50) * 1000:.0f} | "
              f"{pct(cpus, 95) * 1000:.0f} | {per / pct(times, 95):,.0f} | "
              f"{per / max(pct(cpus, 95), 1e-3):,.0f} |")
    summary(f"search indexer, posts/s at the round p95 ({size:,} items)",
            per / pct(ours, 95), per / pct(bare, 95), f">= {args.rate:g} posts/s",
            "posts/s")
    summary(f"search indexer CPU, posts/s at the CPU p95 ({size:,} items)",
            per / max(pct(ours_cpu, 95), 1e-3), per / max(pct(bare_cpu, 95), 1e-3),
            f">= {args.rate:g} posts/s", "posts/s")
    return 0 if per / pct(ours, 95) >= args.rate else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="posts per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=30.0,
                        help="how long to keep searching after the last post")
    parser.add_argument("--quick", action="store_true", help="10 seconds")
    parser.add_argument("--in-process", action="store_true",
                        help="the indexer alone, in rounds of --rate posts (no HTTP)")
    parser.add_argument("--rounds", type=int, default=30, help="with --in-process")
    parser.add_argument("--index", type=Path, default=None,
                        help="with --in-process: start from a copy of DIR/search "
                             "(search_bench.py --keep DIR)")
    parser.add_argument("--workers", type=int, default=1,
                        help="CaseForum's worker processes (uvicorn --workers)")
    parser.add_argument("--verbose", action="store_true", help="progress while running")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="py-spy (pip install py-spy) on the CaseForum server while "
                             "posting; raw collapsed stacks to FILE")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 10.0
    if not 0 < args.rate <= 1000 or not 0 < args.seconds <= 3600:
        parser.error("--rate 0..1000, --seconds 0..3600")

    exit_on_sigterm()  # runs the clean-up below
    workdir = Path(tempfile.mkdtemp(prefix="cf-index-lag-"))
    servers: list[Server] = []
    try:
        print(f"Machine: {conditions()}", flush=True)
        if args.in_process:
            return indexer_rounds(args, workdir)
        data_dir = workdir / "data"
        info = build(data_dir)
        cf = Server("caseforum.app:create_app", workdir, "caseforum",
                    {"CASEFORUM_DATA_DIR": str(data_dir), "CASEFORUM_SECRET_KEY": SECRET},
                    "/healthz", workers=args.workers)
        servers.append(cf)
        cf.wait_ready("/healthz")
        wait_for_consumers(data_dir / "caseforum.db")
        results = [asyncio.run(measure_caseforum(cf, info, args))]
        cf.stop()
        servers.remove(cf)
        bare = Server("index_lag_bench:bare_app", workdir, "bare",
                      {BARE_DB: str(workdir / "bare.db")}, "/search?q=x")
        servers.append(bare)
        bare.wait_ready("/search?q=x")
        results.append(asyncio.run(measure_bare(bare, args)))
        report(results, args)
        return 0 if all(r.found and not r.failures for r in results) else 1
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
