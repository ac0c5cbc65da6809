"""An S3-protocol server on loopback for the tests: moto's standalone ``moto_server``.

The server is a process of its own speaking the S3 wire protocol over HTTP, as MinIO
or AWS would; CaseForum reaches it only through boto3 and the ``[storage]`` settings,
so the same settings (or environment, :func:`storage_env`) point any number of app
processes at one bucket.  ``tests/conftest.py`` offers the fixtures to every test:
``s3_server`` (one per test session, started on first use) is the endpoint;
``s3_bucket`` a fresh, empty bucket on it for one test; ``s3_env`` the environment
that points an app process (``caseforum serve``, ``caseforum init`` ...) at that bucket.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "caseforum-test"
SECRET_KEY = "caseforum-test-secret"
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running ``moto_server``: its address and how to stop it."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_s3_server(timeout: float = 30.0) -> S3Server:
    """Start ``moto_server`` on a free loopback port and wait until it answers."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent)) \
        or shutil.which("moto_server")
    if executable is None:
        pytest.fail("moto_server is missing: install the test extras (moto[server])")
    port = free_port()
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server stopped at start (exit {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    pytest.fail("moto_server did not answer within 30 s")


def storage_env(endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    """The environment that puts an app process's files in ``bucket`` (merge it into
    ``os.environ`` or a subprocess's ``env``)."""
    env = {
        "CASEFORUM_STORAGE__BACKEND": "s3",
        "CASEFORUM_STORAGE__S3_ENDPOINT": endpoint,
        "CASEFORUM_STORAGE__S3_BUCKET": bucket,
        "CASEFORUM_STORAGE__S3_REGION": REGION,
        "CASEFORUM_STORAGE__S3_ACCESS_KEY": ACCESS_KEY,
        "CASEFORUM_STORAGE__S3_SECRET_KEY": SECRET_KEY,
    }
    env.update({f"CASEFORUM_STORAGE__{k.upper()}": v for k, v in extra.items()})
    return env


def storage_settings(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    """The same as :func:`storage_env`, as the ``storage`` argument of ``Settings``."""
    return {"backend": "s3", "s3_endpoint": endpoint, "s3_bucket": bucket,
            "s3_region": REGION, "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY,
            **extra}


def object_keys(server: S3Server, bucket: str, prefix: str = "") -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def seed_bucket(server: S3Server, bucket: str, files_dir: Path) -> int:
    """Copy a local store's content (``<data_dir>/files/ab/cd/<sha256>``) into the
    bucket under the same keys, so the template's demo documents open from it too."""
    client, count = server.client(), 0
    for path in files_dir.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
        client.upload_file(str(path), bucket, "files/" + path.relative_to(files_dir).as_posix())
        count += 1
    return count


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One ``moto_server`` for the test session."""
    server = start_s3_server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the session's server."""
    name = f"cf-{uuid.uuid4().hex[:16]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(s3_server: S3Server, s3_bucket: str) -> dict[str, str]:
    """The ``CASEFORUM_STORAGE__*`` environment for ``s3_bucket``: give it to every app
    process (``environ_with``) and they share one bucket.  The bucket starts empty;
    ``seed_bucket`` copies a data folder's files (the demo's documents) into it."""
    return storage_env(s3_server.endpoint, s3_bucket)


def environ_with(env: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``env``, for a subprocess."""
    return {**os.environ, **env}
