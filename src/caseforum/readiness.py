"""Readiness: can this host serve requests right now?  (``/readyz``.)

Liveness (``/healthz``) only says the process answers; a load balancer should stop
sending traffic to a host whose database, broker or file store (folder or bucket) it
cannot reach, and the operator wants to know which one.  Each check returns ``"ok"``
or a short reason; none waits longer than a couple of seconds.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import text

#: how long a check may wait for a server (Redis, PostgreSQL connect)
TIMEOUT_SECONDS = 2.0


def check_database(engine: Any, url: str) -> str:
    """One query through the pool; for SQLite also a fresh connection to the file,
    because a pooled connection keeps working on a file that was removed, replaced or
    made unreadable, which every new connection would then fail on."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///").split("?")[0]
            if not Path(path).is_file():
                return "the database file is missing"
            fresh = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=TIMEOUT_SECONDS)
            try:
                fresh.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                fresh.close()
    except Exception as exc:
        return _reason(exc)
    return "ok"


def check_broker(redis_url: str | None) -> str:
    """Redis answers a PING (``"ok"`` without Redis: the in-process broker)."""
    if not redis_url:
        return "ok"
    import redis  # only hosts with Redis pay for the import

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT_SECONDS,
                                  socket_timeout=TIMEOUT_SECONDS)
    try:
        client.ping()
    except Exception as exc:
        return _reason(exc)
    finally:
        client.close()
    return "ok"


def check_storage(store: Any) -> str:
    """The file store takes requests: the local folder takes a new file, a bucket
    answers ``HeadBucket`` (the backend's ``check``; see ``storage_backends.py``)."""
    try:
        return str(store.check())
    except Exception as exc:
        return _reason(exc)


def _reason(exc: Exception) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {detail}"[:200]
