"""Create or upgrade the database schema with Alembic (core and plugin branches)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(extra_locations: Iterable[Path | str] = ()) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions"), *(str(p) for p in extra_locations)]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    return cfg


def upgrade(engine: Engine, extra_locations: Iterable[Path | str] = (), *,
            stamp: Path | None = None) -> None:
    """Bring the schema to the newest revision of every branch; safe to repeat.

    With ``stamp`` (a file in the data folder; ``caseforum serve`` passes one) the
    check is skipped when neither the migration files nor the database's revisions
    changed since the last upgrade recorded there: loading Alembic and every
    migration script to learn "nothing to do" was a good part of each start-up."""
    extra = [str(p) for p in extra_locations]
    seen = _state(engine, extra) if stamp is not None else None
    if stamp is not None and seen is not None:
        try:
            if json.loads(stamp.read_text()) == seen:
                return
        except (OSError, ValueError):
            pass
    from alembic import command

    cfg = alembic_config(extra)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
    if stamp is not None:
        with contextlib.suppress(OSError):  # a read-only data folder: check every time
            stamp.write_text(json.dumps(_state(engine, extra)))


def _state(engine: Engine, extra: list[str]) -> dict[str, object]:
    """The migration files (names, sizes, times) and the revisions in the database."""
    digest = hashlib.sha256()
    for folder in sorted([str(MIGRATIONS / "versions"), *extra]):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".py"):
                info = entry.stat()
                digest.update(f"{entry.path}:{info.st_size}:{info.st_mtime_ns};".encode())
    revisions: list[str] = []
    if inspect(engine).has_table("alembic_version"):
        with engine.connect() as connection:
            revisions = sorted(row[0] for row in connection.execute(
                text("SELECT version_num FROM alembic_version")))
    return {"files": digest.hexdigest(), "revisions": revisions}


def revision(engine: Engine, message: str, **kwargs: object) -> None:
    """Autogenerate a migration (developers: ``caseforum db revision``)."""
    from alembic import command

    cfg = alembic_config(kwargs.pop("extra_locations", ()))  # type: ignore[arg-type]
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True, **kwargs)  # type: ignore[arg-type]
