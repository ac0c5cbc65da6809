"""One Portal Dossier link: first (remote) and second (cached) dossier view.

Builds a throw-away data folder (``init`` and the demo dossiers), starts the
reference server (``caseforum-opd-reference``, the recorded Global Dossier answers)
and CaseForum (``uvicorn --factory caseforum.app:create_app`` in its own process)
pointed at it, both on free loopback ports, and logs in a KR examiner.

- **First view**: ``GET /dossiers/{office}/{number}`` of each recorded family not held
  here: the look-up, the family, the document lists and storing them.
- **Cached view** of the US 16/123,456 dossier (3 members, 51 documents) against the
  anchor, a **hosted** dossier of the same shape (a copy of it with source ``hosted``,
  made in the database), timed alternately request by request in the same run.  Goal:
  the cached view within 20 % of the hosted one (ratio hosted/cached >= 0.83).
- The first and second download of the recorded PDF.

    .venv/bin/python benchmarks/opd_bench.py            # 300 cached/hosted pairs
    .venv/bin/python benchmarks/opd_bench.py --quick    # 60 pairs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import summary
from sqlmodel import select

from caseforum.app import build_doc_types
from caseforum.config import Settings
from caseforum.db import make_engine, open_session
from caseforum.models import Application, Document, Family
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import DEMO_PASSWORD, init_database, load_demo

SECRET = "b" * 32
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
FIRST_VIEWS = ("/dossiers/US/16123456", "/dossiers/US/16740760", "/dossiers/US/17193105")
CACHED = "/dossiers/US/16123456"
HOSTED_COPY = ("US", "16999999")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def hosted_copy(settings: Settings) -> None:
    """A hosted dossier shaped like the OPD one: its family and documents, copied."""
    engine = make_engine(settings)
    with open_session(engine) as session:
        source = session.exec(select(Application).where(
            Application.office_code == "US", Application.number == "16123456")).one()
        members = session.exec(select(Application).where(
            Application.family_id == source.family_id)).all()
        family = Family()
        session.add(family)
        session.flush()
        for i, member in enumerate(members):
            number = HOSTED_COPY[1] if member.id == source.id else f"1699999{i}"
            copy = Application(**{**member.model_dump(exclude={"id"}), "number": number,
                                  "display_number": number, "source": "hosted",
                                  "family_id": family.id})
            session.add(copy)
            session.flush()
            for doc in session.exec(select(Document).where(
                    Document.application_id == member.id)).all():
                session.add(Document(**{**doc.model_dump(exclude={"id"}),
                                        "application_id": copy.id}))
        session.commit()
    engine.dispose()


def login(client: httpx.Client) -> None:
    token = CSRF_RE.search(client.get("/login").text)
    assert token, "no CSRF token on the login page"
    r = client.post("/login", data={"username": "kr.examiner", "password": DEMO_PASSWORD,
                                    "csrf_token": token.group(1)})
    assert r.status_code == 303, r.text[:200]


def timed(client: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    r = client.get(path)
    took = time.perf_counter() - t
    if r.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {r.status_code}")
    return took * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 pairs instead of 300")
    parser.add_argument("--pairs", type=int, default=None)
    opts = parser.parse_args()
    pairs = opts.pairs or (60 if opts.quick else 300)
    work = Path(tempfile.mkdtemp(prefix="cf-opd-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = Settings(data_dir=work, secret_key=SECRET)
        engine = make_engine(settings)
        host = PluginHost()
        host.load()
        init_database(engine, host, create_if_empty=True)
        load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
        engine.dispose()

        opd_port, app_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        env.update(CASEFORUM_DATA_DIR=str(work), CASEFORUM_SECRET_KEY=SECRET,
                   CASEFORUM_PLUGINS__OPD_LINK__BASE_URL=f"http://127.0.0.1:{opd_port}")
        bin_dir = Path(sys.executable).parent
        procs.append(start([str(bin_dir / "caseforum-opd-reference"), "--port",
                            str(opd_port)], env, work / "opd.log"))
        procs.append(start([sys.executable, "-m", "uvicorn", "--factory",
                            "caseforum.app:create_app", "--host", "127.0.0.1", "--port",
                            str(app_port), "--log-level", "warning", "--no-access-log"],
                           env, work / "server.log"))
        wait(f"http://127.0.0.1:{opd_port}/_faults")
        wait(f"http://127.0.0.1:{app_port}/healthz")

        print(f"# One Portal Dossier link, {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} CPUs, {pairs} pairs")
        with httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=60) as client:
            login(client)
            first = [timed(client, path) for path in FIRST_VIEWS]
            hosted_copy(settings)
            body = client.get("/api/v1/dossiers/US/16123456").json()
            doc_id = next(d["id"] for d in body["documents"] if d["code"] == "ISSUE.NTF")
            doc_first = timed(client, f"/documents/{doc_id}/content")
            doc_second = timed(client, f"/documents/{doc_id}/content")
            hosted_path = f"/dossiers/{HOSTED_COPY[0]}/{HOSTED_COPY[1]}"
            for _ in range(10):  # warm-up
                timed(client, CACHED)
                timed(client, hosted_path)
            cached, hosted = [], []
            for _ in range(pairs):
                cached.append(timed(client, CACHED))
                hosted.append(timed(client, hosted_path))
        cached_ms, hosted_ms = statistics.median(cached), statistics.median(hosted)
        print("| view | median ms |\n|---|---|")
        for path, ms in zip(FIRST_VIEWS, first, strict=True):
            print(f"| first (remote) {path} | {ms:.1f} |")
        print(f"| cached {CACHED} (p50 of {pairs}) | {cached_ms:.1f} |")
        print(f"| hosted copy {hosted_path} (p50 of {pairs}) | {hosted_ms:.1f} |")
        print(f"| document, first view (remote) | {doc_first:.1f} |")
        print(f"| document, second view (file store) | {doc_second:.1f} |")
        summary("OPD dossier page, cached vs hosted (p50)", cached_ms, hosted_ms,
                ">= 0.83", "ms", higher_is_better=False)
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
