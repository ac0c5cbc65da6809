"""Fixtures for the OPD link: the reference server on a loopback port, started through
its console script as a separate process, and the core fixtures from ``tests/``.

The tests talk to it over real HTTP; its fault switches are reset before each test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import browser as _core_browser
from tests import conftest as _core

globals().update({name: getattr(_core, name) for name in (
    "clean_environment", "template_db", "data_dir", "settings", "engine", "db", "app",
    "client", "as_user", "live_server", "s3_server", "s3_bucket")})
globals().update({name: getattr(_core_browser, name) for name in ("browser", "page")})

SCRIPT = Path(sys.executable).parent / "caseforum-opd-reference"
FIXTURES = Path(__file__).resolve().parent.parent / "src" / "caseforum_opd_link" / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reference:
    """The running reference server."""

    url: str

    def faults(self, **switches: Any) -> dict[str, Any]:
        """Change fault switches (delay, error_rate, malformed, down); returns them all,
        with ``requests``, the number of data requests answered so far."""
        answer = httpx.post(f"{self.url}/_faults", json=switches, timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    @property
    def requests(self) -> int:
        return int(self.faults()["requests"])


@pytest.fixture(scope="session")
def reference_server() -> Iterator[Reference]:
    port = free_port()
    process = subprocess.Popen([str(SCRIPT), "--port", str(port), "--data", str(FIXTURES)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    reference = Reference(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 15
    while True:
        try:
            reference.faults()
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the reference server did not start") from None
            time.sleep(0.05)
    yield reference
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def reference(reference_server: Reference) -> Reference:
    reference_server.faults(delay=0, error_rate=0, malformed=False, down=False)
    return reference_server
