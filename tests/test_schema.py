"""Alembic migrations build exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from caseforum.config import Settings
from caseforum.db import make_engine
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import init_database


def _fresh(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, secret_key="k" * 32)
    host = PluginHost()
    host.load()
    return make_engine(settings), host


def test_init_is_safe_to_run_twice_and_seeds_offices_once(tmp_path: Path) -> None:
    engine, host = _fresh(tmp_path)
    assert init_database(engine, host) == 20
    assert init_database(engine, host) == 0
    assert "user" in inspect(engine).get_table_names()


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine, host = _fresh(tmp_path)
    init_database(engine, host)
    host.models()  # the plugins' tables, which they leave out when loaded
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models changed without a migration: {diff}"
