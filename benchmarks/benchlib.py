"""What every benchmark shares: the ``SUMMARY`` line that ``run_all.py`` collects, and
the plumbing of a server measured in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
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
        self.proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

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
        """User + system CPU the server process has used so far."""
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def wait_for_consumers(db: Path, consumers: int = 3, seconds: float = 90) -> float:
    """Let the server's event consumers work through the build's backlog before
    measuring; returns how long that took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            newest = conn.execute("SELECT max(id) FROM event").fetchone()[0] or 0
            cursors = [r[0] for r in conn.execute("SELECT last_event_id FROM consumer_cursor")]
        if len(cursors) >= consumers and min(cursors) >= newest:
            return time.monotonic() - start
        time.sleep(0.2)
    print("warning: the event consumers had not caught up; measuring anyway", file=sys.stderr)
    return time.monotonic() - start
