"""``/metrics`` of a real ``caseforum serve --workers 2`` reports the whole host (issue 15,
"Metrics and health"): a scrape reaches one worker, yet every scrape shows every request
the host answered, whichever worker answers it, and never fewer than the one before; a
worker killed and replaced takes none of its counts along; the open websockets are those
of the live workers; a new run starts from zero.  SQLite and the in-process broker: the
figures are the workers' own, nothing here needs PostgreSQL or Redis.

Which worker answered a request is read from ``/proc`` (the worker holding the server
end of the connection), so the test knows that both workers answered requests and both
answered scrapes, rather than hoping the kernel spread them."""

from __future__ import annotations

import http.client
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func
from sqlmodel import Session, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.models import ConsumerCursor, Event, User
from caseforum.web.worker_metrics import ENV, WorkerFile, prepare_run
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import wait_for
from tests.hosts_helpers import Host, command_env, run_command
from tests.s3_helpers import S3Server, storage_settings

SLOWEST = pytest.mark.timeout(400)  # two cores may be very busy

ROUTE = "/healthz"
SENT = 40  # requests to ROUTE, each on a connection of its own
SOCKETS = 6
LAG = 7
SLOW = 120.0  # seconds for what takes one on an idle machine (start-up, a replaced worker)


def _workers(host: Host) -> set[int]:
    """The pids of the host's uvicorn workers: live children of its supervisor started
    by multiprocessing's spawn."""
    assert host.process is not None
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().rpartition(b")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == host.process.pid and stat[0] != b"Z" and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def _holder(host: Host, client_port: int) -> int | None:
    """The worker holding the server end of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if local == host.port and remote == client_port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in _workers(host):
        try:
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except OSError:
            continue
    return None


def _get(host: Host, path: str) -> tuple[int | None, str]:
    """GET on a connection of its own: which worker answered, and the body."""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=SLOW)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        assert connection.sock is not None  # kept alive: the worker still holds its end
        return _holder(host, connection.sock.getsockname()[1]), body
    finally:
        connection.close()


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _route_count(families: dict[str, Any]) -> float:
    return sum(s.value for s in families["caseforum_http_requests"].samples
               if s.name == "caseforum_http_requests_total" and s.labels["route"] == ROUTE)


def _sockets(families: dict[str, Any]) -> float:
    return float(families["caseforum_websocket_connections"].samples[0].value)


def _scrapes(host: Host, each: int) -> list[dict[str, Any]]:
    """Scrapes until each of the two workers answered ``each`` of them (a worker that
    has just been started answers once it is ready), in the order made."""
    answered: dict[int, int] = {}
    scrapes: list[dict[str, Any]] = []
    deadline = time.monotonic() + SLOW
    while len(answered) < 2 or min(answered.values()) < each:
        pid, text = _get(host, "/metrics")
        assert time.monotonic() < deadline, f"one worker answers every scrape: {answered}"
        if pid is not None:
            answered[pid] = answered.get(pid, 0) + 1
        scrapes.append(_families(text))
    return scrapes


def _open(socket: Any) -> bool:
    try:
        socket.recv(timeout=0.3)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return True  # it sent something: open


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """Two workers on SQLite, the scraper's address (loopback) allowed, an event consumer
    LAG events behind; the data folder holds the figures of an earlier run that ended
    without cleaning up."""
    data_dir = tmp_path / "host"
    data_dir.mkdir()
    env = command_env(data_dir, f"sqlite:///{data_dir / 'caseforum.db'}", "",
                      {"CASEFORUM_METRICS_ALLOW": "127.0.0.1",
                       "CASEFORUM_RUN_CONSUMERS": "false"})  # less for two cores to do
    run_command(env, "demo")
    engine = create_engine(env["CASEFORUM_DATABASE_URL"])
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == "jp.examiner")).one()
        _, token = accounts.create_token(session, user=user, scopes=["forum"])
        newest = session.exec(select(func.max(Event.id))).one() or 0
        session.add(ConsumerCursor(name="slow-reader", last_event_id=newest - LAG))
        session.commit()
    engine.dispose()
    env["TEST_TOKEN"] = token  # for the test; the server reads no such setting
    (data_dir / "metrics").mkdir()
    earlier = WorkerFile(data_dir / "metrics", 14)  # a killed earlier run's left-overs
    earlier.request("GET", ROUTE, "200", 1000, 0, 1000, 1.0)
    served = Host("workers", data_dir, env, workers=2).start()
    try:
        served.wait_ready(SLOW)
        assert wait_for(lambda: len(_workers(served)) == 2, SLOW), served.output()
        yield served
    finally:
        served.stop()


@pytest.mark.slow
@SLOWEST
def test_every_scrape_reports_the_whole_host_and_survives_a_killed_worker(host: Host) -> None:
    answered = [_get(host, ROUTE)[0] for _ in range(SENT)]
    sent = SENT
    while len(set(answered) - {None}) < 2:  # until each worker has answered some
        answered.append(_get(host, ROUTE)[0])
        sent += 1
        assert sent < 10 * SENT, "one worker answered every request"
    # an answer is counted just after it went out: the first scrape may be early
    assert wait_for(lambda: _route_count(_families(_get(host, "/metrics")[1])) == sent)
    scrapes = _scrapes(host, each=4)
    seen = [_route_count(families) for families in scrapes]
    assert seen == [sent] * len(seen)  # whichever worker answered the scrape
    lags = [s.value for families in scrapes
            for s in families["caseforum_consumer_lag_events"].samples
            if s.labels["consumer"] == "slow-reader"]
    assert lags == [LAG] * len(scrapes)  # read from the database once, not once a worker

    bearer = {"Authorization": f"Bearer {host.env['TEST_TOKEN']}"}
    with ExitStack() as stack:
        sockets = [stack.enter_context(connect(host.url.replace("http", "ws") + "/ws/me",
                                               open_timeout=SLOW, additional_headers=bearer))
                   for _ in range(SOCKETS)]
        # each worker writes its sockets down every second; a busy one may be later
        assert wait_for(lambda: all(_sockets(f) == SOCKETS for f in _scrapes(host, each=2)),
                        SLOW)
        for families in _scrapes(host, each=2):
            assert all(s.value in (0, 1) for s in families["caseforum_source_up"].samples)

        holders = [_holder(host, socket.socket.getsockname()[1]) for socket in sockets]
        victim = holders[0]  # a worker with sockets open: they close with it
        assert victim is not None
        before = _workers(host)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(_workers(host) - before) == 1
                        and len(_workers(host)) == 2, SLOW), host.output()
        still_open = sum(_open(socket) for socket in sockets)
        assert still_open == SOCKETS - holders.count(victim)
        assert wait_for(lambda: all(_sockets(f) == still_open
                                    for f in _scrapes(host, each=2)), SLOW)
        after = [_route_count(families) for families in _scrapes(host, each=4)]
    # the killed worker's answers still count, and nothing from the earlier run does
    assert after == [sent] * len(after)


def test_a_workers_object_store_requests_reach_the_other_workers_scrape(
        data_dir: Path, s3_server: S3Server, s3_bucket: str, db: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two apps in one folder of worker files, as two workers of one host: what one
    asked of the bucket is in the other's ``/metrics`` (counted as it went, not when
    the first next wrote down its state)."""
    monkeypatch.setenv(ENV, "")  # so that what prepare_run sets is taken back after
    prepare_run(data_dir / "metrics", workers=2)
    settings = load_settings(data_dir=data_dir, secret_key="s" * 32, run_consumers=False,
                             metrics_allow=["127.0.0.1"],
                             storage=storage_settings(s3_server.endpoint, s3_bucket))
    uploader, scraped = create_app(settings), create_app(settings)
    headers = token_for(db, "us.admin")
    with TestClient(uploader) as client:
        assert client.post("/api/v1/dossiers", headers=headers, json=dossier_json(
            "US", "16/123,456", publication_number="US 2019/0094321 A1")).status_code == 201
        assert upload(client, headers, "US", "16123456",
                      pdf_bytes("Claim 1. A fin."), code="CLM").status_code == 201
        with TestClient(scraped, client=("127.0.0.1", 1)) as scraper:
            families = _families(scraper.get("/metrics").text)
    puts = [s.value for s in families["caseforum_storage_requests"].samples
            if s.name == "caseforum_storage_requests_total"
            and s.labels["operation"] == "PutObject" and s.labels["outcome"] == "ok"]
    assert puts == [1]
    uploads = [s.value for s in families["caseforum_http_requests"].samples
               if s.name == "caseforum_http_requests_total" and s.labels["method"] == "POST"
               and s.labels["status"] == "201"]
    assert sum(uploads) == 2  # the dossier and the document, answered by the other app


def test_a_metrics_folder_that_cannot_be_emptied_is_refused(
        tmp_path: Path, monkeypatch) -> None:
    """A file ``serve`` cannot remove (another user's) would be counted as one of this
    run's workers: ``serve --workers N`` refuses to start and says what to remove."""
    import shutil

    from caseforum.web import worker_metrics

    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "123-1.db").write_bytes(b"\0" * 16)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **kw: None)  # as if permission denied
    with pytest.raises(OSError, match="cannot empty .*123-1.db"):
        worker_metrics.prepare_run(folder, 2)


def test_a_dead_worker_whose_pid_this_worker_reuses_counts_as_dead(tmp_path: Path) -> None:
    """uvicorn may give a replacement worker the pid of one that died in the same run:
    the dead one's counters still count, but its gauges (sockets) must not be added as
    if it were alive."""
    from caseforum.web import worker_metrics

    folder = tmp_path / "metrics"
    folder.mkdir()
    me = worker_metrics.WorkerFile(folder, len(worker_metrics_buckets()) + 1)
    dead = worker_metrics.MappedValues(folder / f"{os.getpid()}-1.db")  # same pid, earlier
    dead.write(json_key(worker_metrics.GAUGE, "websockets"), 7)
    seen = list(me.others())
    assert [(figures.websockets, alive) for figures, alive in seen] == [(7, False)]


def worker_metrics_buckets() -> tuple[float, ...]:
    from caseforum.web.metrics import BUCKETS

    return BUCKETS


def json_key(*parts: str) -> str:
    import json

    return json.dumps(list(parts))
