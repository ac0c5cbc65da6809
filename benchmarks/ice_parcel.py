"""ICE parcel throughput and memory: encrypt, send and verify one large parcel.

Two throw-away CaseForum instances (SG's and JP's, each with its own SQLite
database and data folder) run on loopback ports in threads of this process, as
the test suite's live servers do; they know each other as peers. SG's examiner
puts one file of ``--mb`` megabytes into a request for JP (encrypted in 64 KiB
chunks into SG's data folder, manifest signed), the parcel is pushed to JP's
inbox over HTTP (``webservice`` route), JP verifies signature, addressing,
sequence and every hash by decrypting the whole file, stores it and returns a
signed receipt that SG verifies. Finally JP's examiner downloads the decrypted
file through the API and its SHA-256 is compared with the original.

    .venv/bin/python benchmarks/ice_parcel.py --mb 200

Peak memory is reported two ways: the Python heap (tracemalloc, all threads,
both servers and the client) and the process's peak resident set size
(``ru_maxrss``, which also counts libsodium, SQLite and the interpreter).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import Office, User
from caseforum.models.office import IceRole
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database

CHUNK = 1024 * 1024


class Server:
    """A uvicorn server for one app on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def make_instance(root: Path, name: str, office: str, role: str) -> dict[str, Any]:
    folder = root / name
    folder.mkdir()
    # run_consumers=false: no background delivery loop; the benchmark delivers itself,
    # so the timing covers exactly one attempt.
    settings = load_settings(data_dir=folder, secret_key=f"{name}-benchmark-secret-0123456789",
                             run_consumers=False)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    init_database(engine, host)
    from caseforum_ice_exchange import keys

    with open_session(engine) as session:
        row = session.get(Office, office)
        assert row is not None
        row.ice_role = IceRole(role)
        session.add(row)
        user = accounts.create_user(session, username=f"{name}.bench", office_code=office,
                                    role="examiner", password=None,
                                    display_name=f"Benchmark {office}")
        keys.generate_keys(session, office_code=office, secret=settings.secret_key or "",
                           actor="benchmark")
        session.commit()
        username = user.username
    app = create_app(settings)
    return {"settings": settings, "engine": engine, "app": app, "server": Server(app),
            "office": office, "user": username}


def introduce(a: dict[str, Any], b: dict[str, Any]) -> None:
    from caseforum_ice_exchange import keys

    for here, there in ((a, b), (b, a)):
        with open_session(there["engine"]) as session:
            record = keys.export_keys(session, office_code=there["office"])
        with open_session(here["engine"]) as session:
            keys.add_peer(session, office_code=there["office"], url=there["server"].url,
                          record=record)
            session.commit()


def write_payload(path: Path, megabytes: int) -> str:
    """Incompressible test data (random blocks), written in 1 MiB pieces."""
    sha = hashlib.sha256()
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        for i in range(megabytes):
            piece = hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]
            sha.update(piece)
            out.write(piece)
    return sha.hexdigest()


def timed(label: str, results: dict[str, float], func: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = func()
    results[label] = time.perf_counter() - start
    return value


class RssSampler:
    """Highest resident set size seen while the block runs (Linux: /proc, every 20 ms).

    ``ru_maxrss`` alone cannot show it: deriving the key-encryption key with Argon2id
    at start-up already touches 64 MiB, so the process's all-time peak hides what
    the parcel itself costs.
    """

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_mb() -> float:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return peak_rss_mb()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = self.current_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current_mb())


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / (1024 * 1024)


def send_one(sg: dict[str, Any], jp: dict[str, Any], payload: Path, token: str
             ) -> tuple[dict[str, float], str]:
    """One request with the payload, from SG to JP: timings per phase, downloaded SHA-256."""
    from caseforum_ice_exchange import delivery, parcels, workflow
    from caseforum_ice_exchange.api import runtime
    from caseforum_ice_exchange.models import IceParcel

    results: dict[str, float] = {}
    sg_rt = runtime(sg["app"])
    with open_session(sg["engine"]) as session:
        user = session.exec(select(User).where(User.username == sg["user"])).one()
        with payload.open("rb") as stream:
            upload = parcels.Upload("payload.bin", "application/octet-stream", stream)
            _, parcel = timed("encrypt and sign", results, lambda: workflow.open_request(
                session, rt=sg_rt, user=user, donor_office="JP", application="JP 2017-187096",
                kind="search", message="benchmark", uploads=[upload], route="webservice"))
    outcome = timed("send, verify at JP, receipt", results,
                    lambda: delivery.deliver(sg_rt, parcel.id))
    if outcome != "delivered":
        with open_session(sg["engine"]) as session:
            row = session.get(IceParcel, parcel.id)
            raise SystemExit(f"not delivered: {outcome}: {row.last_error if row else ''}")

    def download() -> str:
        sha = hashlib.sha256()
        url = f"{jp['server'].url}/api/v1/ice/parcels/{parcel.id}/files/payload.bin"
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                          timeout=300) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                sha.update(chunk)
        return sha.hexdigest()

    return results, timed("download decrypted at JP", results, download)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="parcel size in MiB (default 200)")
    parser.add_argument("--no-heap", action="store_true",
                        help="skip the second, traced run that measures the Python heap")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ice-bench-"))
    try:
        payload = root / "payload.bin"
        original_sha = write_payload(payload, args.mb)
        mib = payload.stat().st_size / (1024 * 1024)
        sg = make_instance(root, "sg", "SG", "recipient")
        jp = make_instance(root, "jp", "JP", "both")
        introduce(sg, jp)
        sg["server"].start()
        jp["server"].start()
        with open_session(jp["engine"]) as session:
            jp_user = session.exec(select(User).where(User.username == jp["user"])).one()
            _, token = accounts.create_token(session, user=jp_user, scopes=["ice"],
                                             expires_days=1)
            session.commit()
        rss_before = RssSampler.current_mb()

        # Timed run: no tracing, which would slow the Python parts several times over.
        with RssSampler() as sampler:
            results, downloaded = send_one(sg, jp, payload, token)
        assert downloaded == original_sha, "the downloaded file differs from the original"
        heap_peak = None
        if not args.no_heap:
            tracemalloc.start()
            _, downloaded = send_one(sg, jp, payload, token)
            heap_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert downloaded == original_sha

        print(f"ICE parcel benchmark: {mib:.0f} MiB, {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
        for label, seconds in results.items():
            print(f"  {label:<30} {seconds:7.2f} s  {mib / seconds:8.1f} MiB/s")
        total = results["encrypt and sign"] + results["send, verify at JP, receipt"]
        print(f"  {'encrypt + send + verify':<30} {total:7.2f} s  {mib / total:8.1f} MiB/s")
        print(f"  RSS before the parcel          {rss_before:7.1f} MiB (both instances, client)")
        print(f"  peak RSS during the parcel     {sampler.peak:7.1f} MiB "
              f"(+{sampler.peak - rss_before:.1f} MiB)")
        print(f"  all-time peak RSS (ru_maxrss)  {peak_rss_mb():7.1f} MiB")
        if heap_peak is not None:
            print(f"  peak Python heap (tracemalloc, second run) {heap_peak / 2**20:.1f} MiB")
        print("  the decrypted download matches the original SHA-256")
        sg["server"].stop()
        jp["server"].stop()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
