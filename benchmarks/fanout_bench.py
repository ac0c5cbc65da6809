"""Fan-out benchmark: CaseForum's live thread against a bare Starlette broadcast.

Both servers run in their own process (uvicorn, one worker, the same websocket
implementation and permessage-deflate), and one client process drives both the
same way in the same run:

1. ``--watchers`` websocket clients connect (``--connect-concurrency`` handshakes
   in flight); the time to connect them all and the handshake p50 are recorded.
   CaseForum's watchers are examiners of seven offices (JP KR CN US AU GB SG:
   providing and accessing, providing only, accessing only) with ``forum
   dossiers:read`` bearer tokens on ``/ws/threads/{id}``; the bare app's are
   anonymous on ``/ws``.
2. ``--messages`` posts, one at a time: each is sent as soon as every watcher has
   the previous one.  CaseForum: ``jp.examiner`` posts through the HTML form, each
   post mentioning a demo dossier (so accessing offices get a card, US does not)
   and a unique marker.  Bare: ``POST /broadcast`` with a copy of a real CaseForum
   fragment (the warm-up post's, as a watcher received it) behind the marker, which
   the app sends to every socket in turn: the same bytes to frame and compress.

The two servers' posts alternate (CaseForum, bare, bare, CaseForum, ...), so that
both meet the same load on a shared machine.

``--languages 4`` adds a second CaseForum room to the same run and server: another
thread with as many watchers again, of the same offices, whose users read English,
Simplified Chinese, Japanese and Korean in turn (``User.locale``; the first room reads
one language, the default).  The three rooms' posts take turns, and the report sets the
two CaseForum rooms side by side: what rendering each post in four languages costs
(every fragment is rendered once per output and language; zones only fill in times).
Both rooms' sockets are open on one server then, so their server CPU is counted post by
post (from sending a post until its last watcher has it) rather than over the run.

Printed for each: deliveries per second (watchers x posts / the time from sending
each post until the last watcher had it, summed over the posts), latency from sending
the POST to the *last* watcher having it (p50, p99, max; and p50 of the POST's answer
and of the first watcher), connect time, server CPU per post, and CaseForum / bare
ratios.
Every watcher must get every post exactly once (and, for CaseForum, in event
order); the exit status is 1 otherwise.

    .venv/bin/python benchmarks/fanout_bench.py            # 500 watchers, 30 posts
    .venv/bin/python benchmarks/fanout_bench.py --quick    # 100 watchers, 10 posts
    .venv/bin/python benchmarks/fanout_bench.py --src ../main/src   # another checkout's server
    .venv/bin/python benchmarks/fanout_bench.py --languages 4  # and a four-language room

Only loopback traffic; the data folder is temporary and removed at the end, and
both server processes are stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import ServerProcess, demo_instance, free_port, pct, summary, wait_for_consumers

SECRET = "fanout-bench-secret-key-0123456789"
DEMO_PASSWORD = "caseforum-demo"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
EVENT_RE = re.compile(r'data-event-id="(\d+)"')
WATCHER_OFFICES = ("JP", "KR", "CN", "US", "AU", "GB", "SG")
MENTIONS = ("JP 2019-041872", "US 17/436,205")  # demo dossiers: cards for some offices
POSTER = "jp.examiner"
#: the languages of the second room's watchers, in turn (``--languages N``: the first N)
LANGUAGES = ("en", "zh-Hans", "ja", "ko")
HERE = Path(__file__).resolve().parent


# The bare broadcast app (served by uvicorn from this file) -------------------------------


def _bare_app() -> Any:
    """With ``BARE_REDIS_URL`` set, a post goes through Redis pub/sub (channel
    ``BARE_CHANNEL``) to every process of the app, each sending it to its own sockets:
    the bare form of several hosts sharing one broker."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients: set[WebSocket] = set()
    redis_url = os.environ.get("BARE_REDIS_URL")
    channel = os.environ.get("BARE_CHANNEL", "fanout-bench")
    shared: dict[str, Any] = {}

    async def watch(ws: WebSocket) -> None:
        await ws.accept()
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.discard(ws)

    async def send_all(text: str) -> None:
        for ws in list(clients):
            with contextlib.suppress(Exception):
                await ws.send_text(text)

    async def broadcast(request: Request) -> Response:
        text = (await request.body()).decode()
        if redis_url:  # to every process, this one included, through the broker
            await shared["redis"].publish(channel, text)
        else:
            await send_all(text)
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        if not redis_url:
            yield
            return
        import redis.asyncio as aioredis

        shared["redis"] = client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)

        async def relay() -> None:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await send_all(message["data"].decode())

        task = asyncio.create_task(relay())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()

    return Starlette(routes=[WebSocketRoute("/ws", watch),
                             Route("/broadcast", broadcast, methods=["POST"])],
                     lifespan=lifespan)


def bare_app() -> Any:
    """Factory for ``uvicorn --factory fanout_bench:bare_app``."""
    return _bare_app()


# Data -------------------------------------------------------------------------------------


def build(data_dir: Path, watchers: int, log: Any, languages: int = 1,
          database_url: str | None = None) -> dict[str, Any]:
    """Demo data, an open category with one thread, and one token per watcher; with
    ``languages`` > 1 a second thread, whose watchers read that many languages in turn.
    SQLite in ``data_dir``, or the empty PostgreSQL database at ``database_url``."""
    from sqlmodel import select

    from caseforum import accounts
    from caseforum.db import open_session
    from caseforum.forum import service as forum
    from caseforum.models import User

    t0 = time.perf_counter()
    _, engine, host = demo_instance(data_dir, SECRET, database_url)
    rooms: list[tuple[int, list[tuple[str, str]]]] = []
    with open_session(engine) as session:
        author = session.exec(select(User).where(User.username == POSTER)).one()
        category = forum.create_category(session, name="Fan-out benchmark", offices=[])
        spoken = [LANGUAGES[:1]] + ([LANGUAGES[:languages]] if languages > 1 else [])
        for room, codes in enumerate(spoken):
            thread, _ = forum.create_thread(
                session, author=author, category=category,
                title=f"Live fan-out, {len(codes)} language(s)", body="Watch this thread.",
                patterns=host.reference_patterns())
            tokens: list[tuple[str, str]] = []
            for i in range(watchers):
                office = WATCHER_OFFICES[i % len(WATCHER_OFFICES)]
                # the one-language room chooses nothing: the instance default, as before
                user = accounts.create_user(
                    session, username=f"fan{room or ''}-{office.lower()}-{i:04d}",
                    office_code=office, role="examiner", password=None)
                if room:
                    user.locale = codes[i % len(codes)]
                    session.add(user)
                _, plain = accounts.create_token(session, user=user,
                                                 scopes=["forum", "dossiers:read"])
                tokens.append((office, plain))
            rooms.append((thread.id or 0, tokens))
        session.commit()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    log(f"  demo data, {len(rooms)} thread(s) and {watchers} watcher tokens each: "
        f"{time.perf_counter() - t0:.1f} s")
    return {"rooms": rooms}


# Servers ----------------------------------------------------------------------------------



class Server(ServerProcess):
    """One uvicorn process (``target`` is a factory), stopped by :meth:`stop`."""

    def __init__(self, target: str, workdir: Path, name: str, env: dict[str, str],
                 ready_path: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        full = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        full.update(env, PYTHONUNBUFFERED="1")
        self.spawn([sys.executable, "-m", "uvicorn", "--factory", target, "--app-dir",
                    str(HERE), "--host", "127.0.0.1", "--port", str(self.port),
                    "--log-level", "warning", "--no-access-log", "--ws", "websockets-sansio",
                    *(["--workers", str(workers)] if workers > 1 else [])],
                   env=full, workdir=workdir, log_name=f"{name}.log")




# Measuring --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    watchers: int = 0
    connect_seconds: float = 0.0
    handshakes: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # POST sent -> last watcher
    firsts: list[float] = field(default_factory=list)  # POST sent -> first watcher
    answers: list[float] = field(default_factory=list)  # POST sent -> its answer
    wall: float = 0.0
    delivered: int = 0
    expected: int = 0
    missing: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    distinct: list[int] = field(default_factory=list)  # distinct fragments per post
    by_host: dict[int, list[float]] = field(default_factory=dict)  # POST -> host's last
    sizes: list[int] = field(default_factory=list)
    server_cpu: float | None = None
    #: the server's CPU from sending each post until its last watcher had it, summed:
    #: what a room costs when another room shares its server (``--languages``)
    post_cpu: float = 0.0
    shares_server: bool = False

    @property
    def rate(self) -> float:
        return self.delivered / self.wall if self.wall else float("nan")

    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.out_of_order)


class Poster:
    """Sends post ``k`` carrying ``marker``; CaseForum through the form, bare directly."""

    async def start(self) -> None: ...

    async def send(self, k: int, marker: str) -> None:
        raise NotImplementedError

    async def close(self) -> None: ...


class FormPoster(Poster):
    def __init__(self, base: str, thread_id: int) -> None:
        self.base, self.thread_id = base, thread_id
        self.client = httpx.AsyncClient(base_url=base, timeout=60, follow_redirects=False)
        self.csrf = ""

    async def start(self) -> None:
        form = await self.client.get("/login")
        token = CSRF_RE.search(form.text)
        assert token, "no CSRF token on the login page"
        r = await self.client.post("/login", data={"username": POSTER,
                                                   "password": DEMO_PASSWORD,
                                                   "csrf_token": token.group(1)})
        if r.status_code != 303:
            raise RuntimeError(f"log-in failed: {r.status_code}")
        found = CSRF_RE.search((await self.client.get("/")).text)
        assert found, "no CSRF token after log-in"
        self.csrf = found.group(1)

    async def send(self, k: int, marker: str) -> None:
        body = (f"Live check {marker}: the family of {MENTIONS[k % len(MENTIONS)]} has a "
                f"new search report; claims 1-{3 + k % 5} are affected.")
        r = await self.client.post(f"/threads/{self.thread_id}/posts",
                                   data={"csrf_token": self.csrf, "body": body})
        if r.status_code != 303:
            raise RuntimeError(f"posting failed: {r.status_code} {r.text[:300]}")

    async def close(self) -> None:
        await self.client.aclose()


class BarePoster(Poster):
    def __init__(self, base: str, fragment: str) -> None:
        self.client = httpx.AsyncClient(base_url=base, timeout=60)
        # a real CaseForum fragment (HTML, compressed like it), without its event id: the
        # order check reads event ids, and the bare app has none
        self.fragment = EVENT_RE.sub("", fragment)

    async def send(self, k: int, marker: str) -> None:
        text = f'<div id="post-{k}">{marker}</div>{self.fragment}'
        r = await self.client.post("/broadcast", content=text.encode())
        if r.status_code != 204:
            raise RuntimeError(f"broadcast failed: {r.status_code}")

    async def close(self) -> None:
        await self.client.aclose()


class Run:
    """One server's watchers and posts; :func:`run` interleaves two of them post by
    post, so that both see the same load on a shared machine."""

    def __init__(self, name: str, urls: list[str], headers: list[dict[str, str]],
                 poster: Poster, server: Any, args: argparse.Namespace) -> None:
        """``urls``: the watchers connect to them in turn (one per host)."""
        self.name, self.urls, self.headers = name, urls, headers
        self.poster, self.server, self.args = poster, server, args
        self.res = Result(name, watchers=len(headers))
        self.run_id = hashlib.sha1(f"{name}{time.time()}".encode()).hexdigest()[:8]
        self.marker_re = re.compile(rf"fan-{self.run_id}-(\d+)")
        self.received: list[dict[int, int]] = [{} for _ in headers]
        self.event_ids: list[list[int]] = [[] for _ in headers]
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.host_arrivals: dict[tuple[int, int], float] = {}  # (host, post): latest
        self.fragments: dict[int, set[str]] = defaultdict(set)
        self.done: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.sockets: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.spy: subprocess.Popen[bytes] | None = None
        self.cpu0: float | None = None
        self.warm_texts: list[str] = []

    async def _watch(self, i: int, limit: asyncio.Semaphore, ready: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        res = self.res
        async with limit:
            t = time.perf_counter()
            ws = await connect(self.urls[i % len(self.urls)],
                               additional_headers=self.headers[i], open_timeout=120,
                               ping_interval=None, close_timeout=2,
                               compression=None if self.args.no_compression else "deflate",
                               max_queue=None)
            res.handshakes.append(time.perf_counter() - t)
        self.sockets.append(ws)
        if len(self.sockets) == len(self.headers):
            ready.set()
        with contextlib.suppress(Exception):
            async for message in ws:
                now = time.perf_counter()
                found = self.marker_re.search(message)
                if not found or 'id="post-' not in message:
                    if 'id="post-' in message:
                        self.warm_texts.append(message)  # the warm-up post
                    continue
                k = int(found.group(1))
                self.received[i][k] = self.received[i].get(k, 0) + 1
                ev = EVENT_RE.search(message)
                if ev:
                    self.event_ids[i].append(int(ev.group(1)))
                if self.received[i][k] == 1:
                    self.arrivals[k].append(now)
                    self.host_arrivals[(i % len(self.urls), k)] = now
                    self.fragments[k].add(hashlib.sha1(message.encode()).hexdigest())
                    res.sizes.append(len(message))
                    if len(self.arrivals[k]) == len(self.headers):
                        self.done[k].set()

    async def connect(self, log: Any) -> None:
        ready = asyncio.Event()
        limit = asyncio.Semaphore(self.args.connect_concurrency)
        t0 = time.perf_counter()
        self.tasks = [asyncio.create_task(self._watch(i, limit, ready))
                      for i in range(len(self.headers))]
        try:
            await asyncio.wait_for(ready.wait(), timeout=self.args.connect_timeout)
        except TimeoutError:
            failed = [t for t in self.tasks if t.done() and t.exception()]
            detail = repr(failed[0].exception()) if failed else "timeout"
            raise RuntimeError(f"{self.name}: only {len(self.sockets)}/{len(self.headers)} "
                               f"watchers connected: {detail}") from None
        self.res.connect_seconds = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # let the last subscriptions go live on the server
        log(f"  {self.name}: {len(self.sockets)} watchers connected in "
            f"{self.res.connect_seconds:.2f} s "
            f"(handshake p50 {pct(self.res.handshakes, 50) * 1000:.0f} ms)")

    async def start(self) -> None:
        await self.poster.start()
        await self.poster.send(10**6, f"fan-{self.run_id}-warm")  # templates, caches
        await asyncio.sleep(1.0)
        if self.args.profile and isinstance(self.poster, FormPoster):
            self.spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(self.server.proc.pid), "--format", "raw", "--rate", "200", "--gil",
                 "--nonblocking", "-o", str(self.args.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        self.cpu0 = self.server.cpu_seconds()

    async def post(self, k: int) -> None:
        """Send post ``k`` and wait until every watcher has it."""
        cpu0 = self.server.cpu_seconds()
        t_send = time.perf_counter()
        await self.poster.send(k, f"fan-{self.run_id}-{k:04d}")
        self.res.answers.append(time.perf_counter() - t_send)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done[k].wait(), timeout=self.args.message_timeout)
        self.res.wall += time.perf_counter() - t_send
        cpu1 = self.server.cpu_seconds()
        if cpu0 is not None and cpu1 is not None:
            self.res.post_cpu += cpu1 - cpu0
        if self.arrivals[k]:
            self.res.latencies.append(max(self.arrivals[k]) - t_send)
            self.res.firsts.append(min(self.arrivals[k]) - t_send)
        self.res.distinct.append(len(self.fragments[k]))
        for host in range(len(self.urls)):
            if (host, k) in self.host_arrivals:
                self.res.by_host.setdefault(host, []).append(
                    self.host_arrivals[(host, k)] - t_send)

    async def finish(self) -> Result:
        res, args = self.res, self.args
        cpu1 = self.server.cpu_seconds()
        if res.shares_server:
            res.server_cpu = res.post_cpu
        elif self.cpu0 is not None and cpu1 is not None:
            res.server_cpu = cpu1 - self.cpu0
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(timeout=30)
        await asyncio.sleep(0.5)  # late duplicates would show up here
        await self.poster.close()
        for i in range(len(self.headers)):
            got = self.received[i]
            res.delivered += sum(1 for k in got if k < args.messages)
            res.duplicates += sum(c - 1 for c in got.values() if c > 1)
            res.missing += sum(1 for k in range(args.messages) if k not in got)
            ids = self.event_ids[i]
            res.out_of_order += sum(1 for a, b in zip(ids, ids[1:], strict=False) if b <= a)
        res.expected = len(self.headers) * args.messages
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return res


def report(results: list[Result], args: argparse.Namespace, log: Any,
           where: str = "") -> None:
    """``where``: how the rows say what was measured, e.g. " across 2 hosts"."""
    log("")
    log(f"| {'server':<10} | watchers | posts | deliveries/s | p50 ms | p99 ms | max ms "
        f"| POST answer p50 ms | first watcher p50 ms "
        f"| connect s | handshake p50 ms | server CPU ms/post | distinct fragments/post "
        f"| delivered |")
    log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ms = [x * 1000 for x in r.latencies]
        cpu = (f"{r.server_cpu / args.messages * 1000:.0f}" if r.server_cpu is not None
               else "n/a")
        distinct = f"{min(r.distinct)}-{max(r.distinct)}" if r.distinct else "n/a"
        log(f"| {r.name:<10} | {r.watchers} | {args.messages} | {r.rate:,.0f} "
            f"| {pct(ms, 50):.1f} | {pct(ms, 99):.1f} | {max(ms) if ms else float('nan'):.1f} "
            f"| {pct(r.answers, 50) * 1000:.1f} | {pct(r.firsts, 50) * 1000:.1f} "
            f"| {r.connect_seconds:.2f} | {pct(r.handshakes, 50) * 1000:.0f} | {cpu} "
            f"| {distinct} | {r.delivered}/{r.expected} |")
    if len(results) == 3:
        one, many, _ = results
        log("")
        languages = args.languages
        cpu_one, cpu_many = (r.server_cpu / args.messages * 1000 if r.server_cpu is not None
                             else float("nan") for r in (one, many))
        log(f"{languages} languages / one, same server and run: deliveries/s "
            f"{many.rate / one.rate:.2f}; p50 {pct(many.latencies, 50) * 1000:.0f} ms vs "
            f"{pct(one.latencies, 50) * 1000:.0f} ms; p99 "
            f"{pct(many.latencies, 99) * 1000:.0f} ms vs {pct(one.latencies, 99) * 1000:.0f} "
            f"ms; server CPU per post {cpu_many:.0f} ms vs {cpu_one:.0f} ms, "
            f"{(cpu_many - cpu_one) / (languages - 1):+.1f} ms per added language")
        summary(f"live fan-out, {many.watchers} watchers in {languages} languages / one",
                many.rate, one.rate, "report", "deliveries/s")
        results = [one, results[2]]
    if len(results) == 2:
        cf, bare = results
        log("")
        log(f"CaseForum / bare: deliveries/s {cf.rate / bare.rate:.2f} "
            f"(goal >= 0.60); connecting {cf.connect_seconds / bare.connect_seconds:.1f}x "
            f"the bare time; p99 {pct(cf.latencies, 99) * 1000:.0f} ms vs "
            f"{pct(bare.latencies, 99) * 1000:.0f} ms (goal < 100 ms)")
        summary(f"live fan-out{where}, {cf.watchers} watchers", cf.rate, bare.rate,
                ">= 0.60", "deliveries/s")
        summary(f"live fan-out{where} p99, POST to last of {cf.watchers} watchers",
                pct(cf.latencies, 99) * 1000, pct(bare.latencies, 99) * 1000, "< 100 ms", "ms",
                higher_is_better=False)
    for r in results:
        if len(r.by_host) > 1:
            log(f"{r.name}, POST to the last watcher of each host (host 1 took the POST): "
                + "; ".join(f"host {h + 1} p50 {pct(v, 50) * 1000:.0f} ms, p99 "
                            f"{pct(v, 99) * 1000:.0f} ms" for h, v in sorted(r.by_host.items())))
    for r in results:
        if not r.ok():
            log(f"{r.name}: {r.missing} missing, {r.duplicates} twice, "
                f"{r.out_of_order} out of order")


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class ServerGroup:
    """Several hosts of one kind, measured as one: CPU is their sum."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.proc = servers[0].proc  # the posting host (py-spy attaches there)

    def cpu_seconds(self) -> float | None:
        times = [s.cpu_seconds() for s in self.servers]
        return None if None in times else sum(t or 0.0 for t in times)


def ws_urls(servers: list[Server], path: str) -> list[str]:
    return [s.url.replace("http://", "ws://") + path for s in servers]


def in_turn(runs: list[Run], k: int) -> list[Run]:
    """The order of the rooms' ``k``-th posts: each leads in turn (two rooms:
    CaseForum, bare, bare, CaseForum, ...; three: A B C, B C A, C A B, ...)."""
    if len(runs) == 2:
        return runs if k % 2 == 0 else runs[::-1]
    return runs[k % len(runs):] + runs[:k % len(runs)]


async def run(args: argparse.Namespace, workdir: Path, log: Any, servers: list[Server], *,
              hosts: int = 1, database_url: str | None = None,
              redis_url: str | None = None) -> list[Result]:
    """``hosts`` > 1: that many CaseForum processes (each with a data folder of its own,
    as separate machines have) on the database at ``database_url`` with Redis at
    ``redis_url``, and as many bare processes relaying through Redis; the watchers are
    dealt out over them in turn and every post goes to the first."""
    data_dir = workdir / "data"
    log(f"Building the data in {database_url or data_dir}")
    info = build(data_dir, args.watchers, log, args.languages, database_url)
    env = {"CASEFORUM_SECRET_KEY": SECRET}
    if database_url:
        env["CASEFORUM_DATABASE_URL"] = database_url
    if redis_url:
        env["CASEFORUM_REDIS_URL"] = redis_url
    if args.src:  # before/after comparisons: the server runs another checkout's code
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    bare_env = {"BARE_REDIS_URL": redis_url,
                "BARE_CHANNEL": f"fanout-bench-{os.getpid()}"} if redis_url else {}
    cf = [Server("caseforum.app:create_app", workdir, f"caseforum{i}",
                 {**env, "CASEFORUM_DATA_DIR": str(data_dir if i == 0 else workdir / f"data{i}")},
                 "/healthz") for i in range(hosts)]
    bare = [Server("fanout_bench:bare_app", workdir, f"bare{i}", bare_env, "/broadcast")
            for i in range(hosts)]
    servers += [*cf, *bare]
    for server in servers:
        server.wait_ready(server.ready_path)
    wait_for_consumers(database_url or data_dir / "caseforum.db")
    log(f"Fan-out to {args.watchers} watchers on {hosts} host(s), {args.messages} posts "
        f"each, the {len(info['rooms']) + 1} rooms' posts interleaved")
    rooms: list[Run] = []
    for thread_id, tokens in info["rooms"]:
        headers = [{"Authorization": f"Bearer {token}"} for _, token in tokens]
        name = "CaseForum" if not rooms else f"CF {args.languages} lang"
        room = Run(name, ws_urls(cf, f"/ws/threads/{thread_id}"), headers,
                   FormPoster(cf[0].url, thread_id), ServerGroup(cf), args)
        room.res.shares_server = len(info["rooms"]) > 1
        await room.connect(log)
        await room.start()
        rooms.append(room)
    # the bare app sends what CaseForum sent: a real fragment (the median-sized one)
    texts = sorted(rooms[0].warm_texts, key=len) or ["<p>" + "x" * 2000 + "</p>"]
    fragment = texts[len(texts) // 2]
    plain = Run("bare", ws_urls(bare, "/ws"), [{} for _ in range(args.watchers)],
                BarePoster(bare[0].url, fragment), ServerGroup(bare), args)
    await plain.connect(log)
    await plain.start()
    runs = [*rooms, plain]
    for k in range(args.messages):
        for room in in_turn(runs, k):
            await room.post(k)
    return [await room.finish() for room in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 100 watchers, 10 posts")
    parser.add_argument("--message-timeout", type=float, default=30)
    parser.add_argument("--connect-timeout", type=float, default=180)
    parser.add_argument("--connect-concurrency", type=int, default=25,
                        help="websocket handshakes in flight at once")
    parser.add_argument("--src", default=None,
                        help="run the CaseForum server from this src folder (e.g. of main)")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="py-spy (pip install py-spy) on the CaseForum server while "
                             "posting; raw collapsed stacks to FILE")
    parser.add_argument("--no-compression", action="store_true",
                        help="watchers do not offer permessage-deflate (browsers do)")
    parser.add_argument("--languages", type=int, default=1, choices=range(1, 5),
                        metavar="N", help="also a room whose watchers read N languages "
                        "(2-4: en, zh-Hans, ja, ko), beside the one-language room")
    args = parser.parse_args()
    if args.quick:
        args.watchers, args.messages = 100, 10
    if not 1 <= args.watchers <= 5000 or not 1 <= args.messages <= 1000:
        parser.error("--watchers 1..5000, --messages 1..1000")

    def log(text: str) -> None:
        print(text, flush=True)

    def terminated(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # runs the clean-up below

    signal.signal(signal.SIGTERM, terminated)
    raise_fd_limit(2 * args.watchers + 256)
    workdir = Path(tempfile.mkdtemp(prefix="cf-fanout-bench-"))
    servers: list[Server] = []
    try:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        log(f"Machine: {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; Python "
            f"{sys.version.split()[0]}; compression "
            f"{'off' if args.no_compression else 'deflate'}")
        results = asyncio.run(run(args, workdir, log, servers))
        report(results, args, log)
        return 0 if all(r.ok() for r in results) else 1
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
