"""Create or upgrade the database schema with Alembic (core and plugin branches)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(extra_locations: Iterable[Path | str] = ()) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions"), *(str(p) for p in extra_locations)]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    return cfg


def upgrade(engine: Engine, extra_locations: Iterable[Path | str] = ()) -> None:
    """Bring the schema to the newest revision of every branch; safe to repeat."""
    cfg = alembic_config(extra_locations)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")


def revision(engine: Engine, message: str, **kwargs: object) -> None:
    """Autogenerate a migration (developers: ``caseforum db revision``)."""
    cfg = alembic_config(kwargs.pop("extra_locations", ()))  # type: ignore[arg-type]
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True, **kwargs)  # type: ignore[arg-type]
