"""Removing files that a crash or a refused request left in the file store.

An upload that dies half-way (a killed worker, a full disk, a dropped
connection the server never noticed) can leave a temporary file in
``<store>/tmp`` (or, in a bucket, a multipart upload never completed); a file can be
stored and its database row never committed.
Neither is ever served, but both fill the disk.  The sweep removes temporary
files, and content files that no document uses, once they are older than a
minimum age, so an upload still in progress is never touched.

It runs every ``sweep_interval_minutes`` inside the server (one small task;
each worker sweeps, which is harmless) and as ``caseforum sweep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.engine import Engine
from sqlmodel import select

from caseforum.db import open_session
from caseforum.models import Document
from caseforum.storage import FileStore
from caseforum.storage_backends import StorageBackend

log = logging.getLogger(__name__)
_BATCH = 500


@dataclass
class SweepResult:
    temporary: int = 0  # files removed from <store>/tmp, multipart uploads aborted
    unreferenced: int = 0  # content files no document uses
    bytes: int = 0

    def __str__(self) -> str:
        return (f"removed {self.temporary} temporary and {self.unreferenced} unused files "
                f"({self.bytes / (1024 * 1024):.1f} MB)")


def sweep(engine: Engine, store: StorageBackend | Path, *, min_age_seconds: float,
          now: float | None = None) -> SweepResult:
    """Remove old temporary files and old content files that no document uses
    (``store`` is a backend, or the local store's folder)."""
    if isinstance(store, Path):
        store = FileStore(store)
    cutoff = (now if now is not None else time.time()) - min_age_seconds
    result = SweepResult()
    result.temporary, result.bytes = store.sweep_temporary(cutoff)
    batch: list[tuple[str, int]] = []

    def flush() -> None:
        with open_session(engine) as session:
            used = set(session.exec(select(Document.sha256).where(
                Document.sha256.in_([sha for sha, _ in batch]))))  # type: ignore[attr-defined]
        for sha, size in batch:
            # checked again just before removing: an upload may have reused the file
            if sha not in used and store.remove_if_stale(sha, cutoff):
                result.unreferenced += 1
                result.bytes += size
        batch.clear()

    for item in store.stale_content(cutoff):
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return result


class PeriodicSweep:
    """Runs :func:`sweep` every ``interval_minutes`` in a worker thread (first
    run one interval after start-up); ``interval_minutes=0`` does nothing."""

    def __init__(self, engine: Engine, store: StorageBackend | Path, *, interval_minutes: int,
                 min_age_minutes: int) -> None:
        self.engine, self.store = engine, store
        self.interval = interval_minutes * 60
        self.min_age = min_age_minutes * 60

    @classmethod
    def from_settings(cls, engine: Engine, settings: Any,
                      store: StorageBackend | None = None) -> PeriodicSweep:
        return cls(engine, store or settings.storage_dir,
                   interval_minutes=settings.sweep_interval_minutes,
                   min_age_minutes=settings.sweep_min_age_minutes)

    async def start(self) -> asyncio.Task[Any] | None:
        """Start sweeping in the running event loop; give the result to :meth:`stop`.
        (One app may be started several times, in several loops, as tests do.)"""
        if self.interval <= 0:
            return None
        return asyncio.create_task(self._loop(), name="caseforum-sweep")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                result = await anyio.to_thread.run_sync(
                    lambda: sweep(self.engine, self.store, min_age_seconds=self.min_age))
                if result.temporary or result.unreferenced:
                    log.info("file sweep: %s", result)
            except Exception:  # a failed sweep is retried next time; the server goes on
                log.exception("file sweep failed")

    @staticmethod
    async def stop(task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
