"""N app hosts, one truth (issue 15): two real ``caseforum serve`` processes on loopback,
each with a data folder of its own, sharing one PostgreSQL database, one Redis and one
S3-protocol bucket (host B runs two workers).  What a user does through one host holds
on the other: live posts, plugin switches, log-outs, the log-in throttle, idempotent
uploads, documents, search; a host killed mid-stream loses its sockets' viewers nothing.
Skipped (with the reason) without CASEFORUM_TEST_POSTGRES_URL and
CASEFORUM_TEST_REDIS_URL; CI (.ci/run) sets both."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func
from sqlmodel import Session, col, select

from caseforum import authcache
from caseforum.events import AUDITED_OFFICE_EVENTS, emit
from caseforum.models import AccountAudit, Category, Document, Event
from tests.conftest import _service_or_skip
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.forum_helpers import wait_for
from tests.hosts_helpers import SECRET, Host, fresh_database, hosts
from tests.s3_helpers import S3Server, object_keys, storage_env
from tests.test_forum_live import EVENT_RE, Browserless, receive_posts

pytestmark = [pytest.mark.services, pytest.mark.slow]

WITHIN = 10.0  # seconds a change made on one host may take to show on the other
ASKS = 4  # requests on fresh connections, to reach each worker of host B
BODY_RE = re.compile(r"<p>(cross-\w+)</p>")


class Cluster:
    """The two hosts and a way into their shared database."""

    def __init__(self, a: Host, b: Host, database_url: str, redis_url: str,
                 folder: Path) -> None:
        self.a, self.b = a, b
        self.database_url, self.redis_url, self.folder = database_url, redis_url, folder
        self.engine = create_engine(database_url)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def category(self, name: str = "General") -> int:
        with self.session() as db:
            return db.exec(select(Category.id).where(Category.name == name)).one() or 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Cluster]:
    """Hosts A and B (two workers) on one new database, one Redis and one bucket."""
    import os

    base = _service_or_skip("postgres", os.environ.get("CASEFORUM_TEST_POSTGRES_URL"), 5432)
    redis_url = _service_or_skip("redis", os.environ.get("CASEFORUM_TEST_REDIS_URL"), 6379)
    folder = tmp_path_factory.mktemp("hosts")
    bucket = f"cf-hosts-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    with fresh_database(base) as url, hosts(folder, url, redis_url, workers=(1, 2),
                                            env=storage_env(s3_server.endpoint, bucket)
                                            ) as (a, b):
        made = Cluster(a, b, url, redis_url, folder)
        yield made
        made.engine.dispose()


@pytest.fixture(autouse=True)
def host_logs(cluster: Cluster) -> Iterator[None]:
    """The hosts' own logs of each test, printed (and so shown when the test fails)."""
    sizes = {host.name: host.log.stat().st_size for host in (cluster.a, cluster.b)}
    yield
    for host in (cluster.a, cluster.b):
        with host.log.open("rb") as log:
            log.seek(sizes[host.name])
            print(f"--- host {host.name} ---\n" + log.read().decode(errors="replace")[-6000:])


def person(host: Host, username: str) -> Browserless:
    return Browserless(host.url, username)


def via(who: Browserless, host: Host) -> Browserless:
    """The same browser (cookie and CSRF token) talking to another host, as a load
    balancer would send it: the session lives in the shared database."""
    who.base = host.url
    who.http.base_url = httpx.URL(host.url)
    return who


def until(check: Callable[[], bool], seconds: float = WITHIN) -> bool:
    """:func:`tests.forum_helpers.wait_for` with the cross-host deadline."""
    return wait_for(check, seconds)


def workers_of(host: Host) -> list[int]:
    """The worker processes uvicorn started under a host's ``caseforum serve``."""
    pid = host.process.pid if host.process else 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def fresh_gets(who: Browserless, path: str, **params: str) -> list[httpx.Response]:
    """``GET path`` :data:`ASKS` times, each on a new connection (so that each of a
    host's workers may answer), with ``who``'s cookie."""
    out = []
    for _ in range(ASKS):
        with httpx.Client(base_url=who.base, cookies=who.http.cookies, timeout=10) as http:
            out.append(http.get(path, params=params))
    return out


def searched(who: Browserless, words: str, thread: int) -> list[bool]:
    """For each of :func:`fresh_gets`' answers: whether search finds ``thread``."""
    out = []
    for answer in fresh_gets(who, "/api/v1/search", q=words):
        assert answer.status_code == 200, answer.text
        out.append(any(f"/threads/{thread}" in hit["url"]
                       for hit in answer.json()["results"]))
    return out


def bodies(fragments: list[str]) -> list[str]:
    return [m.group(1) for f in fragments if (m := BODY_RE.search(f))]


def test_a_post_made_through_a_reaches_a_socket_on_b(cluster: Cluster) -> None:
    jp, kr = person(cluster.a, "jp.examiner"), person(cluster.b, "kr.examiner")
    thread = jp.start(cluster.category(), "Across hosts", "cross-opening")
    with kr.socket(f"/ws/threads/{thread}") as ws:
        jp.post(thread, "cross-live")
        assert bodies(receive_posts(ws, 1, timeout=WITHIN)) == ["cross-live"]


def test_a_plugin_switched_off_on_a_is_off_on_b_within_seconds(cluster: Cluster) -> None:
    admin = person(cluster.a, "admin")
    reader = person(cluster.b, "jp.examiner")

    def ice_answers() -> set[int]:  # from both of B's workers
        return {r.status_code for r in fresh_gets(reader, "/api/v1/ice/exchanges")}

    def switch(action: str) -> None:
        done = admin.http.post(f"/admin/plugins/ice_exchange/{action}",
                               data={"csrf_token": admin.csrf})
        assert done.status_code == 303, done.text

    assert ice_answers() == {200}
    switch("disable")
    try:
        assert until(lambda: ice_answers() == {404}), "host B still serves the ICE plugin"
    finally:
        switch("enable")
    assert until(lambda: ice_answers() == {200}), "host B did not switch the plugin back on"


def test_the_login_throttle_counts_failures_on_both_hosts(cluster: Cluster) -> None:
    def attempt(host: Host) -> httpx.Response:
        http = httpx.Client(base_url=host.url, timeout=10)
        form = http.get("/login")
        token = re.search(r'name="csrf-token" content="([^"]+)"', form.text).group(1)
        return http.post("/login", data={"username": "sg.examiner", "password": "wrong",
                                         "csrf_token": token})

    # five failures allowed per account and address (login_max_failures), spread over both
    for host in (cluster.a, cluster.b, cluster.a, cluster.b, cluster.a):
        assert attempt(host).status_code == 401
    for host in (cluster.b, cluster.a):
        refused = attempt(host)
        assert refused.status_code == 429, f"host {host.name} let a sixth guess through"
        assert "Too many failed log-ins" in refused.text


def test_a_log_out_on_a_ends_the_session_on_b_at_once(cluster: Cluster) -> None:
    """Sessions live in the shared database; each worker remembers who a cookie belongs
    to for a few seconds, and forgets it as soon as its live hub reads the log-out."""
    au = person(cluster.a, "au.examiner")
    kept = dict(au.http.cookies)  # the same cookie in another tab, or a stolen copy

    def on_b() -> set[int]:
        answers = []
        for _ in range(ASKS):
            with httpx.Client(base_url=cluster.b.url, cookies=kept, timeout=10) as http:
                answers.append(http.get("/api/v1/me").status_code)
        return set(answers)

    assert on_b() == {200}  # B's workers know the session now, for CACHE_SECONDS
    assert au.http.post("/logout", data={"csrf_token": au.csrf}).status_code == 303
    started = time.monotonic()
    assert until(lambda: on_b() == {401}), "host B still accepts the session"
    assert time.monotonic() - started < authcache.CACHE_SECONDS - 1


def test_an_upload_retried_on_the_other_host_is_stored_once(cluster: Cluster) -> None:
    with cluster.session() as db:
        us = token_for(db, "us.admin")
    a = httpx.Client(base_url=cluster.a.url, timeout=20)
    b = httpx.Client(base_url=cluster.b.url, timeout=20)
    made = a.post("/api/v1/dossiers", headers=us, json=dossier_json(
        "US", "17/000,001", publication_number="US 2019/0094399 A1"))
    assert made.status_code == 201, made.text

    def documents() -> int:
        with cluster.session() as db:
            return db.exec(select(func.count()).select_from(Document)).one()

    before = documents()
    key = {"Idempotency-Key": "cross-host-upload-1"}
    content = pdf_bytes("a search report sent twice")
    first = upload(a, us, "US", "17000001", content, extra_headers=key)
    again = upload(b, us, "US", "17000001", content, extra_headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert documents() == before + 1

    # both hosts at once (a client that gave up waiting on A and tried B): one document,
    # and both answers name it
    key = {"Idempotency-Key": "cross-host-upload-2"}
    content = pdf_bytes("a written opinion sent to both hosts at once")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda client: upload(client, us, "US", "17000001", content, code="WOSA",
                                  extra_headers=key), (a, b)))
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert documents() == before + 2


def test_a_document_uploaded_on_a_is_downloaded_on_b(cluster: Cluster) -> None:
    """The hosts share the object store, not a folder: what one stored the other serves."""
    with cluster.session() as db:
        us = token_for(db, "us.admin")
    a = httpx.Client(base_url=cluster.a.url, headers=us, timeout=20)
    b = httpx.Client(base_url=cluster.b.url, headers=us, timeout=20)
    made = a.post("/api/v1/dossiers", json=dossier_json(
        "US", "17/000,002", publication_number="US 2019/0094400 A1"))
    assert made.status_code == 201, made.text
    content = pdf_bytes("claims stored through host A")
    stored = upload(a, {}, "US", "17000002", content, code="CLM")
    assert stored.status_code == 201, stored.text
    for host in (b, a):  # B first: nothing of it is on B's disk
        download = host.get(f"/api/v1/documents/{stored.json()['id']}/content")
        assert download.status_code == 200, download.text
        assert download.content == content
    assert not list((cluster.b.data_dir / "files").rglob(stored.json()["sha256"]))


def test_an_ice_parcel_sent_through_a_is_read_through_b(cluster: Cluster,
                                                        s3_server: S3Server) -> None:
    """Both offices on this instance (the hosted route): SG asks JP through host A; the
    parcel's parts are in the bucket, and JP's examiner opens them through host B."""
    from caseforum_ice_exchange import keys

    from caseforum.models import Office
    from caseforum.models.office import IceRole

    with cluster.session() as db:
        for code, role in (("SG", "recipient"), ("JP", "both")):
            office = db.get(Office, code)
            assert office is not None
            office.ice_role = IceRole(role)
            db.add(office)
            if not keys.is_local(db, code):
                keys.generate_keys(db, office_code=code, secret=SECRET, actor="test")
        db.commit()
        sg = token_for(db, "sg.examiner", "ice")
        jp = token_for(db, "jp.examiner", "ice")
    claims = b"1. A lamp comprising a solar cell.\n" * 20
    with httpx.Client(base_url=cluster.a.url, headers=sg, timeout=30) as a:
        created = a.post("/api/v1/ice/exchanges", data={
            "donor_office": "JP", "application": "JP 2017-187096", "kind": "search",
            "due_date": "2099-01-31", "message": "Claims 1-3, please."},
            files=[("file", ("claims.txt", claims, "text/plain"))])
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=cluster.b.url, headers=jp, timeout=30) as b:
        exchange = b.get(f"/api/v1/ice/exchanges/{created.json()['id']}")
        assert exchange.status_code == 200, exchange.text
        parcel = exchange.json()["parcels"][0]
        assert parcel["message"] == "Claims 1-3, please."
        assert b.get(parcel["files"][0]["url"]).content == claims
    bucket = cluster.a.env["CASEFORUM_STORAGE__S3_BUCKET"]
    assert object_keys(s3_server, bucket, f"ice/parcels/{parcel['id'][:2]}/{parcel['id']}/")
    for host in (cluster.a, cluster.b):
        assert not list((host.data_dir / "ice").rglob(parcel["id"]))


def test_a_post_made_on_a_is_found_by_search_on_b(cluster: Cluster) -> None:
    jp = person(cluster.a, "jp.examiner")
    thread = jp.start(cluster.category(), "Indexed on every host", "cross-opening")
    jp.post(thread, "cross-zirconium-oxynitride")
    kr = person(cluster.b, "kr.examiner")

    assert until(lambda: searched(kr, "oxynitride", thread) == [True] * ASKS), \
        "host B's index did not get the post"
    assert until(lambda: searched(via(jp, cluster.a), "oxynitride", thread) == [True] * ASKS)
    # each host's index is its own folder, fed by its own cursor
    for host in (cluster.a, cluster.b):
        assert (host.data_dir / "search").is_dir()


def test_sockets_of_a_killed_host_resume_on_the_other_with_nothing_lost_or_doubled(
        cluster: Cluster) -> None:
    jp = person(cluster.b, "jp.examiner")
    kr = person(cluster.a, "kr.examiner")
    thread = jp.start(cluster.category(), "Failover", "cross-opening")
    posted: list[str] = []
    stop = threading.Event()

    def keep_posting() -> None:  # another examiner writing all along, through B
        n = 0
        while not stop.is_set():
            n += 1
            body = f"cross-p{n:03d}"
            jp.post(thread, body)
            posted.append(body)
            time.sleep(0.05)

    seen: list[str] = []
    last = 0
    writer = threading.Thread(target=keep_posting)
    try:
        with kr.socket(f"/ws/threads/{thread}") as ws:
            writer.start()
            for fragment in receive_posts(ws, 5, timeout=WITHIN):
                seen += bodies([fragment])
                last = max(last, int(EVENT_RE.search(fragment).group(1)))
            cluster.a.kill()  # mid-stream: B's writer keeps posting
            with pytest.raises(Exception):  # noqa: B017  (the socket's end, however it shows)
                while True:
                    fragment = ws.recv(timeout=WITHIN)
                    if 'id="post-' in fragment:
                        seen += bodies([fragment])
                        last = max(last, int(EVENT_RE.search(fragment).group(1)))
        away = len(posted)
        assert until(lambda: len(posted) >= away + 3)  # posts made while the client is away
        via(kr, cluster.b)
        with kr.socket(f"/ws/threads/{thread}?after={last}") as ws:
            back = len(posted)
            assert until(lambda: len(posted) >= back + 3)  # and while it catches up
            stop.set()
            writer.join(timeout=WITHIN)
            while len(seen) < len(posted):
                seen += bodies(receive_posts(ws, 1, timeout=WITHIN))
            with pytest.raises(TimeoutError):
                receive_posts(ws, 1, timeout=1.0)  # and nothing twice
    finally:
        stop.set()
        if writer.is_alive():
            writer.join(timeout=WITHIN)
        cluster.a.start().wait_ready()  # the next tests find both hosts up
    assert seen == posted
    assert len(posted) >= 11


def test_the_consumers_of_all_hosts_handle_each_event_once(cluster: Cluster) -> None:
    """Three processes (A, and B's two workers) run the account-history consumer on one
    shared cursor: every log-in, made on either host, is recorded once."""
    for host in (cluster.a, cluster.b, cluster.a, cluster.b):
        person(host, "cn.examiner")

    def recorded() -> bool:
        with cluster.session() as db:
            audits = db.exec(select(func.count()).select_from(AccountAudit)).one()
            events = db.exec(select(func.count()).select_from(Event).where(
                col(Event.kind).like("account.%")
                | col(Event.kind).in_(AUDITED_OFFICE_EVENTS))).one()
        return bool(audits == events)

    assert until(recorded), "the account history misses events"
    for host in (cluster.a, cluster.b):
        assert "consumer account-audit failed" not in host.output()


def test_events_become_visible_in_id_order(cluster: Cluster) -> None:
    """A transaction holding an event id blocks later events until it ends: otherwise a
    reader (a host's live hub, a consumer, a resuming socket) that has passed a later id
    never comes back for the earlier one, committed a moment after it."""
    slow = cluster.session()
    early = emit(slow, kind="test.slow")
    slow.flush()  # its id is taken; the commit comes later
    later: list[int] = []

    def quick() -> None:  # another request, on another host
        with cluster.session() as db:
            event = emit(db, kind="test.quick")
            db.commit()
            later.append(event.id or 0)

    writer = threading.Thread(target=quick)
    writer.start()
    writer.join(timeout=1.0)
    assert writer.is_alive(), "a later event became visible before an earlier one"
    slow.commit()
    slow.close()
    writer.join(timeout=WITHIN)
    assert later and later[0] > (early.id or 0)


def test_serve_with_two_workers_on_postgres_and_redis(cluster: Cluster) -> None:
    """Host B is ``caseforum serve --workers 2``: both workers run, sockets on either get
    a post made through host A, and the host's one search index (written by one worker
    at a time) answers on both."""
    assert until(lambda: len(workers_of(cluster.b)) == 2), workers_of(cluster.b)
    jp, kr = person(cluster.a, "jp.examiner"), person(cluster.b, "kr.examiner")
    thread = jp.start(cluster.category(), "Workers", "cross-opening")
    with ExitStack() as stack:  # four connections: the kernel spreads them over the workers
        sockets = [stack.enter_context(kr.socket(f"/ws/threads/{thread}")) for _ in range(4)]
        jp.post(thread, "cross-workers")
        for ws in sockets:
            assert bodies(receive_posts(ws, 1, timeout=WITHIN)) == ["cross-workers"]
    assert until(lambda: searched(kr, "cross-workers", thread) == [True] * ASKS)
    assert "search-indexer crashed" not in cluster.b.output()
