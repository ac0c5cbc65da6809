"""Removing files that a crash or a refused request left in the file store.

An upload that dies half-way (a killed worker, a full disk, a dropped
connection the server never noticed) can leave a temporary file in
``<store>/tmp``; a file can be stored and its database row never committed.
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
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.engine import Engine
from sqlmodel import select

from caseforum.db import open_session
from caseforum.models import Document

log = logging.getLogger(__name__)
_SHA = re.compile(r"[0-9a-f]{64}")
_BATCH = 500


@dataclass
class SweepResult:
    temporary: int = 0  # files removed from <store>/tmp
    unreferenced: int = 0  # content files no document uses
    bytes: int = 0

    def __str__(self) -> str:
        return (f"removed {self.temporary} temporary and {self.unreferenced} unused files "
                f"({self.bytes / (1024 * 1024):.1f} MB)")


def _old_files(folder: Path, cutoff: float) -> Iterator[tuple[Path, int]]:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if path.is_file() and not path.is_symlink() and info.st_mtime < cutoff:
            yield path, info.st_size


def _content_files(root: Path, cutoff: float) -> Iterator[tuple[str, Path, int]]:
    """Old files laid out as ``ab/cd/<sha256>`` under ``root``."""
    for first in root.glob("[0-9a-f][0-9a-f]"):
        for second in first.glob("[0-9a-f][0-9a-f]"):
            for path, size in _old_files(second, cutoff):
                name = path.name
                if _SHA.fullmatch(name) and name.startswith(first.name + second.name):
                    yield name, path, size


def _still_old(path: Path, cutoff: float) -> bool:
    """Checked again just before removing: an upload may have reused the file."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def sweep(engine: Engine, store_root: Path, *, min_age_seconds: float,
          now: float | None = None) -> SweepResult:
    """Remove old temporary files and old content files that no document uses."""
    cutoff = (now if now is not None else time.time()) - min_age_seconds
    result = SweepResult()
    for path, size in _old_files(store_root / "tmp", cutoff):
        if _unlink(path):
            result.temporary += 1
            result.bytes += size
    batch: list[tuple[str, Path, int]] = []

    def flush() -> None:
        with open_session(engine) as session:
            used = set(session.exec(select(Document.sha256).where(
                Document.sha256.in_([sha for sha, _, _ in batch]))))  # type: ignore[attr-defined]
        for sha, path, size in batch:
            if sha not in used and _still_old(path, cutoff) and _unlink(path):
                result.unreferenced += 1
                result.bytes += size
        batch.clear()

    for item in _content_files(store_root, cutoff):
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return result


class PeriodicSweep:
    """Runs :func:`sweep` every ``interval_minutes`` in a worker thread (first
    run one interval after start-up); ``interval_minutes=0`` does nothing."""

    def __init__(self, engine: Engine, store_root: Path, *, interval_minutes: int,
                 min_age_minutes: int) -> None:
        self.engine, self.store_root = engine, store_root
        self.interval = interval_minutes * 60
        self.min_age = min_age_minutes * 60

    @classmethod
    def from_settings(cls, engine: Engine, settings: Any) -> PeriodicSweep:
        return cls(engine, settings.storage_dir, interval_minutes=settings.sweep_interval_minutes,
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
                    lambda: sweep(self.engine, self.store_root, min_age_seconds=self.min_age))
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
