"""Cold start: ``caseforum serve`` skips the schema check only when nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from caseforum import schema
from caseforum.plugin_host import PluginHost


@pytest.fixture
def locations() -> list[Any]:
    """The installed plugins' migration folders, as ``caseforum serve`` passes them."""
    host = PluginHost()
    host.load()
    return list(host.migrations())

MIGRATION = '''
"""A plugin's first migration, added after the last start."""
import sqlalchemy as sa
from alembic import op

revision = "probe0001"
down_revision = None
branch_labels = ("probe",)
depends_on = None


def upgrade() -> None:
    op.create_table("probe_table", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("probe_table")
'''


def test_a_restart_skips_alembic_but_a_new_migration_is_applied(
        engine: Any, locations: list[Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = tmp_path / "schema-stamp.json"
    schema.upgrade(engine, locations, stamp=stamp)  # the first start: checks, records
    assert stamp.exists()

    import alembic.command

    def must_not_run(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("alembic ran although nothing changed")

    monkeypatch.setattr(alembic.command, "upgrade", must_not_run)
    schema.upgrade(engine, locations, stamp=stamp)  # a restart: nothing to do, nothing loaded
    monkeypatch.undo()

    plugin = tmp_path / "plugin_migrations"
    plugin.mkdir()
    (plugin / "probe0001.py").write_text(MIGRATION)
    schema.upgrade(engine, [*locations, plugin], stamp=stamp)  # new code: checked again
    assert inspect(engine).has_table("probe_table")


def test_a_new_database_with_an_old_stamp_is_created(engine: Any, locations: list[Any],
                                                     tmp_path: Path) -> None:
    """The database was replaced (a new ``database_url``, a restore): the stamp left in
    the data folder no longer matches it, so the schema is made."""
    from caseforum.config import Settings
    from caseforum.db import make_engine

    stamp = tmp_path / "schema-stamp.json"
    schema.upgrade(engine, locations, stamp=stamp)
    fresh = make_engine(Settings(data_dir=tmp_path / "other", secret_key="f" * 32))
    (tmp_path / "other").mkdir()
    try:
        schema.upgrade(fresh, locations, stamp=stamp)
        assert inspect(fresh).has_table("plugin_state")
    finally:
        fresh.dispose()
