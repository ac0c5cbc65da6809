"""What every benchmark shares: the ``SUMMARY`` line that ``run_all.py`` collects, and
the plumbing of a server measured in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any


def summary(row: str, caseforum: float, bare: float | None, goal: str, unit: str,
            higher_is_better: bool = True) -> None:
    """Print one machine-readable row for ``benchmarks/run_all.py``'s table.

    ``higher_is_better=False`` for times (the ratio is then bare / CaseForum), so that
    a ratio of 1 always means "as fast as the bare framework".  ``bare`` is ``None`` for
    a row with an absolute goal and no anchor (``goal="< 1 s"``)."""
    ratio = (caseforum / bare if higher_is_better else bare / caseforum) \
        if caseforum and bare else None
    print("SUMMARY " + json.dumps({"row": row, "caseforum": round(caseforum, 2),
                                   "bare": None if bare is None else round(bare, 2),
                                   "ratio": ratio and round(ratio, 3),
                                   "goal": goal, "unit": unit}), flush=True)


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def conditions() -> str:
    """One line on what the numbers were measured under: a shared machine's load
    moves absolute numbers far more than ratios."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs, load average {load} (1/5/15 min); Python "
            f"{sys.version.split()[0]}")


def exit_on_sigterm() -> None:
    """SIGTERM (a killed ``run_all.py``, a CI timeout) raises ``SystemExit``, so that the
    caller's ``finally`` stops its servers and drops its database as on Ctrl+C."""
    def terminated(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(x) for x in (task / "children").read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn's workers under its supervisor)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += _children(current)
    return tree


def cpu_of(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used so far (Linux)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def demo_instance(data_dir: Path, secret_key: str,
                  database_url: str | None = None) -> tuple[Any, Any, Any]:
    """A new instance with the demo data: SQLite in ``data_dir``, or the empty PostgreSQL
    database at ``database_url``.  Returns its settings, engine and loaded plugins."""
    from caseforum.app import build_doc_types
    from caseforum.config import load_settings
    from caseforum.db import make_engine
    from caseforum.plugin_host import PluginHost
    from caseforum.setup_db import init_database, load_demo

    settings = load_settings(data_dir=data_dir, secret_key=secret_key,
                             database_url=database_url)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    return settings, engine, host


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server the benchmark runs in its own process on a free loopback port, its
    output in ``log_path``; the subclass gives the command (:meth:`spawn`)."""

    proc: subprocess.Popen[Any]
    log_path: Path
    _log: IO[bytes]
    url: str

    def spawn(self, command: list[str], *, env: dict[str, str], workdir: Path,
              log_name: str) -> None:
        self.log_path = workdir / log_name
        self._log = self.log_path.open("wb")
        # a session of its own: stop() can then end a supervisor's workers with it
        self.proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait_ready(self, path: str = "/healthz", seconds: float = 60) -> None:
        """Until ``path`` answers with anything but a server error."""
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer {path}: {self.tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU the server has used so far: the process and, for a
        supervisor with ``--workers N``, its worker processes."""
        times = self.cpu_by_process()
        return sum(times.values()) if times else None

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds so far of each process of the server (pid: seconds)."""
        times = {pid: cpu_of(pid) for pid in process_tree(self.proc.pid)}
        return {pid: t for pid, t in times.items() if t is not None}

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group (its workers too), SIGKILL after 15 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # a worker left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def wait_for_consumers(db: Path | str, consumers: int = 3, seconds: float = 90) -> float:
    """Let the server's event consumers work through the build's backlog before
    measuring; returns how long that took.  ``db``: the SQLite file, or a PostgreSQL
    URL."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        with _connect(db) as conn:
            newest = conn.execute("SELECT max(id) FROM event").fetchone()[0] or 0
            cursors = [r[0] for r in conn.execute("SELECT last_event_id FROM consumer_cursor")]
        if len(cursors) >= consumers and min(cursors) >= newest:
            return time.monotonic() - start
        time.sleep(0.2)
    print("warning: the event consumers had not caught up; measuring anyway", file=sys.stderr)
    return time.monotonic() - start


@contextlib.contextmanager
def _connect(db: Path | str) -> Iterator[Any]:
    if isinstance(db, Path):
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            yield conn
    else:
        import psycopg

        with psycopg.connect(plain_dsn(db), autocommit=True) as pg:
            yield pg


# PostgreSQL -------------------------------------------------------------------------------

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def plain_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class PostgresDatabase:
    """A database of the benchmark's own on a PostgreSQL server: created for the run
    (a unique name unless one is given) and dropped afterwards unless ``keep``."""

    def __init__(self, admin_url: str = ADMIN_URL, name: str | None = None,
                 keep: bool = False) -> None:
        self.admin = plain_dsn(admin_url)
        self.name = name or f"cf_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if not DB_NAME_RE.match(self.name):
            raise ValueError(f"database name {self.name!r}: use lower-case letters, digits "
                             "and _, starting with a letter")
        self.keep = keep
        self.created = False

    @property
    def dsn(self) -> str:
        return self.admin.rsplit("/", 1)[0] + "/" + self.name

    @property
    def url(self) -> str:
        """The URL for ``CASEFORUM_DATABASE_URL``."""
        return self.dsn.replace("postgresql://", "postgresql+psycopg://", 1)

    def exists(self) -> bool:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (self.name,)).fetchone() is not None

    def create(self) -> bool:
        """Create the database; ``False`` when a kept one of that name is there already."""
        import psycopg

        if self.keep and self.exists():
            return False
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True
        return True

    def drop(self) -> None:
        """Drop it (connections still open are ended), unless it is to be kept."""
        import psycopg

        if self.keep or not self.created:
            return
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False

    def backend_cpu_seconds(self) -> float:
        """CPU seconds used so far by the server processes of the sessions open on this
        database (a local server only: read from ``/proc``)."""
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            pids = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,))]
        return sum(cpu_of(pid) or 0.0 for pid in pids)


class ConnectionPool:
    """At most ``size`` connections to a database, lent one request at a time: what a
    bare anchor needs so that ``--workers N`` cannot open more than N x ``size``.

    ``target`` is a SQLite file or a PostgreSQL URL; with PostgreSQL, queries written
    with ``?`` placeholders (as for sqlite3) are sent with ``%s``, so one text of SQL
    serves both."""

    def __init__(self, target: str, size: int = 4) -> None:
        self.target, self.size = target, size
        self.made = 0
        self.idle: Queue[Any] = Queue()
        self.lock = threading.Lock()
        self.postgres = target.startswith("postgresql")

    def _new(self) -> Any:
        if self.postgres:
            import psycopg

            return _QmarkConnection(psycopg.connect(plain_dsn(self.target), autocommit=True))
        return sqlite3.connect(f"file:{self.target}?mode=ro", uri=True,
                               check_same_thread=False)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        conn = None
        with self.lock:
            if self.idle.empty() and self.made < self.size:
                self.made += 1
                conn = self._new()
        if conn is None:
            try:
                conn = self.idle.get(timeout=30)
            except Empty:
                raise RuntimeError("no database connection free for 30 s") from None
        try:
            yield conn
        finally:
            self.idle.put(conn)


class _QmarkConnection:
    """A psycopg connection that takes sqlite3's ``?`` placeholders."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params or None)


def run_each(steps: list[Callable[[], Any]]) -> None:
    """Run clean-up steps in turn, each even when one before it failed."""
    problems = []
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report every failed clean-up step
            problems.append(repr(exc))
    if problems:
        print("clean-up problems: " + "; ".join(problems), file=sys.stderr)
