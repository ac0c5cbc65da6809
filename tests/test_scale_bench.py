"""``benchmarks/scale_bench.py`` in its smallest real runs: each mode against the
PostgreSQL and Redis servers, the numbers it reports, and that it leaves no database,
server process or folder behind, also when interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import _service_or_skip


def real_run(test: Any) -> Any:
    """A test that starts real servers: a minute or so on a loaded 2-core machine."""
    return pytest.mark.slow(pytest.mark.services(pytest.mark.timeout(300)(test)))


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_bench.py"
WHERE_RE = re.compile(r"^Work folder (\S+), database (\w+)$", re.M)


@pytest.fixture
def services() -> list[str]:
    postgres = _service_or_skip("postgres", os.environ.get("CASEFORUM_TEST_POSTGRES_URL"), 5432)
    redis = _service_or_skip("redis", os.environ.get("CASEFORUM_TEST_REDIS_URL"), 6379)
    return ["--postgres", postgres, "--redis", redis]


def databases(services: list[str]) -> set[str]:
    admin = services[1].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def drop(services: list[str], name: str) -> None:
    admin = services[1].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def processes_in(folder: str) -> list[int]:
    """Processes whose working folder is ``folder`` (the servers the script started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def run(*args: str, timeout: float = 240) -> tuple[str, dict[str, dict]]:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {}
    for line in done.stdout.splitlines():
        if line.startswith("SUMMARY "):
            row = json.loads(line.removeprefix("SUMMARY "))
            rows[row["row"]] = row
    return done.stdout, rows


def assert_cleaned_up(out: str, services: list[str]) -> None:
    folder, name = WHERE_RE.search(out).groups()  # type: ignore[union-attr]
    assert name not in databases(services)
    assert not Path(folder).exists()
    assert not processes_in(folder)


@real_run
def test_workers_mode_measures_both_servers_at_each_worker_count(services: list[str]) -> None:
    out, rows = run("workers", *services, "--workers", "1", "2", "--dossiers", "200",
                    "--seconds", "1", "--rounds", "1", "--warmup", "0.3", "--clients", "2",
                    "--client-processes", "1")
    for n in (1, 2):
        for endpoint in ("dossier API", "thread page"):
            row = rows[f"{endpoint}, {n} worker(s), PostgreSQL"]
            assert row["bare"] > 0, row
        assert rows[f"dossier API, {n} worker(s), PostgreSQL"]["caseforum"] > 0
    assert rows["dossier API, throughput 2 / 1 worker(s)"]["caseforum"] > 0
    assert "| dossier API | 2 |" in out and "16 cores" in out
    assert "load average" in out
    assert_cleaned_up(out, services)


@real_run
def test_watchers_mode_delivers_every_post_on_both_hosts(services: list[str]) -> None:
    out, rows = run("watchers", *services, "--watchers", "6", "--messages", "2")
    assert "| CaseForum  | 6 | 2 |" in out and "| 12/12 |" in out  # every watcher, every post
    assert "host 2 p50" in out
    assert rows["live fan-out across 2 hosts, 6 watchers"]["caseforum"] > 0
    assert_cleaned_up(out, services)


@real_run
def test_big_mode_generates_reads_and_keeps_the_database(services: list[str]) -> None:
    name = f"cf_scale_test_{os.getpid()}"
    try:
        out, rows = run("big", *services, "--dossiers", "300", "--requests", "5",
                        "--keep", name)
        assert "300 dossiers" in out and "errors" in out
        for endpoint in ("dossier page", "dossier API"):
            row = rows[f"{endpoint} p95 at 313 dossiers (PostgreSQL)"]  # + 13 demo dossiers
            assert row["caseforum"] > 0 and row["bare"] > 0
        assert name in databases(services)
        again, _ = run("big", *services, "--requests", "5", "--keep", name)
        assert f"Reusing the kept database {name}" in again
    finally:
        drop(services, name)


@real_run
def test_interrupted_run_stops_its_servers_and_drops_its_database(services: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "workers", *services, "--workers",
                             "1", "--dossiers", "100", "--seconds", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while "servers up" not in out and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out += line
    assert "servers up" in out, out
    folder, _ = WHERE_RE.search(out).groups()  # type: ignore[union-attr]
    assert processes_in(folder)  # the two servers are running
    proc.send_signal(signal.SIGINT)  # Ctrl+C
    out += proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, out
    assert_cleaned_up(out, services)


def test_without_postgresql_it_says_where_it_looked() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "big", "--postgres",
                           "postgresql://postgres@127.0.0.1:9/postgres"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no PostgreSQL at --postgres postgresql://postgres@127.0.0.1:9/postgres" \
        in done.stderr
    assert "SUMMARY" not in done.stdout
