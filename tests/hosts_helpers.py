"""Several app hosts on loopback: real ``caseforum serve`` processes, each with a data
folder of its own, sharing one fresh PostgreSQL database and one Redis (issue 15, "N app
hosts, one truth").  Used by tests/test_cross_host.py; extra settings (for example an
object store: ``CASEFORUM_STORAGE__BACKEND=s3`` ...) go to every host through ``env``.
CaseForum keeps nothing in Redis but its wake-ups (pub/sub), so there is nothing to
flush there afterwards; the database is made for the hosts and dropped after them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

#: the servers' own settings come only from here: never the developer's CASEFORUM_*
_KEEP = ("CASEFORUM_PASSWORD_HASH_PROFILE",)
SECRET = "cross-host-secret-" + "k" * 30  # one key on every host: a cookie works on each
START_SECONDS = 60.0  # two hosts starting at once on a busy two-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command_env(data_dir: Path, database_url: str, redis_url: str,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one host's ``caseforum`` commands."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CASEFORUM_") or k in _KEEP}
    env.update({
        "CASEFORUM_DATA_DIR": str(data_dir),
        "CASEFORUM_DATABASE_URL": database_url,
        "CASEFORUM_REDIS_URL": redis_url,
        "CASEFORUM_SECRET_KEY": SECRET,
        "CASEFORUM_PASSWORD_HASH_PROFILE": "test",
        "CASEFORUM_SWEEP_INTERVAL_MINUTES": "0",
        **(extra or {}),
    })
    return env


def run_command(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """Run ``caseforum ARGS`` as an operator would; its output, or the test fails
    with what it printed."""
    done = subprocess.run([sys.executable, "-m", "caseforum", *args], env=dict(env),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"caseforum {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class Host:
    """One ``caseforum serve`` process on a free loopback port."""

    def __init__(self, name: str, data_dir: Path, env: Mapping[str, str],
                 workers: int = 1) -> None:
        self.name = name
        self.data_dir = data_dir
        self.env = dict(env)
        self.workers = workers
        self.port = free_port()
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Host:
        args = [sys.executable, "-m", "caseforum", "serve", "--port", str(self.port)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        with open(self.log, "ab") as out:
            # a process group of its own: stopping it stops uvicorn's workers too
            self.process = subprocess.Popen(args, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        """Until ``/readyz`` says 200 (database, Redis and file store answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"host {self.name} exited:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"host {self.name} not ready in {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug: no shut-down, no goodbye to sockets."""
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: a host too busy to read its wake-ups for a while (its sockets stay
        open); :meth:`resume` lets it go on from where it was."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.process.wait(timeout=10)


@contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """A uniquely named PostgreSQL database on the server of ``base_url``, dropped after."""
    import psycopg

    name = f"cf_hosts_{uuid.uuid4().hex[:12]}"
    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def hosts(folder: Path, database_url: str, redis_url: str, *, count: int = 2,
          env: Mapping[str, str] | None = None,
          workers: Sequence[int] = ()) -> Iterator[list[Host]]:
    """``count`` hosts on one database and one Redis: the schema and the demo data made
    once (``caseforum demo`` from the first host), then every host started at once and
    waited for; all stopped afterwards.  ``workers``: each host's ``--workers`` (1 for
    those not named)."""
    made = []
    for i in range(count):
        data_dir = folder / f"host-{chr(ord('a') + i)}"
        data_dir.mkdir(parents=True, exist_ok=True)
        made.append(Host(chr(ord("A") + i), data_dir,
                         command_env(data_dir, database_url, redis_url, env),
                         workers[i] if i < len(workers) else 1))
    run_command(made[0].env, "demo")
    try:
        for host in made:
            host.start()
        for host in made:
            host.wait_ready()
        yield made
    finally:
        for host in made:
            host.stop()
