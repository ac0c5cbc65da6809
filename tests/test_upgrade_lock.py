"""Schema upgrades while other hosts run (issue 15, zero-downtime upgrades): one upgrade
at a time per database, a clear wait and a clear give-up, and a host of the previous
version that starts against a schema a newer version already migrated."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import inspect, text

from caseforum import errors, schema
from caseforum.db import make_engine
from caseforum.plugin_host import PluginHost
from tests.hosts_helpers import command_env


def _locations() -> list[Any]:
    host = PluginHost()
    host.load()
    return list(host.migrations())


def _hold_lock(url: str) -> psycopg.Connection:
    """Another process upgrading: it holds the upgrade lock on its own connection."""
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (schema.UPGRADE_LOCK,))
    return conn


@pytest.mark.services
def test_an_upgrade_waits_for_another_then_finds_the_work_done(postgres_url: str,
                                                               tmp_path: Path) -> None:
    from caseforum.config import load_settings

    engine = make_engine(load_settings(data_dir=tmp_path, database_url=postgres_url,
                                       secret_key="u" * 32))
    other = _hold_lock(postgres_url)
    done = threading.Event()

    def start_up() -> None:
        schema.upgrade(engine, _locations(), create_if_empty=True)
        done.set()

    starting = threading.Thread(target=start_up)
    starting.start()
    try:
        assert not done.wait(1.5), "an upgrade ran while another held the lock"
        assert "event" not in inspect(engine).get_table_names()
    finally:
        other.close()  # the other upgrade ends (its session and lock with it)
    starting.join(timeout=60)
    assert done.is_set()
    assert "event" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.services
def test_a_waiter_gives_up_with_a_clear_error(postgres_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from caseforum.config import load_settings

    engine = make_engine(load_settings(data_dir=tmp_path, database_url=postgres_url,
                                       secret_key="u" * 32))
    monkeypatch.setattr(schema, "UPGRADE_WAIT_SECONDS", 0.5)
    other = _hold_lock(postgres_url)
    try:
        with pytest.raises(errors.Unavailable, match="another process has been upgrading"):
            schema.upgrade(engine, _locations(), create_if_empty=True)
    finally:
        other.close()
    assert inspect(engine).get_table_names() == []
    engine.dispose()


@pytest.mark.services
@pytest.mark.slow
def test_two_hosts_initialising_one_empty_database_at_once(postgres_url: str, redis_url: str,
                                                          tmp_path: Path) -> None:
    """Two hosts started together against a new database: one makes the schema, the
    other waits for it and finds it made (before the lock one of them failed on a table
    the other had just created)."""
    runs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        env = command_env(folder, postgres_url, redis_url)
        runs.append(subprocess.Popen([sys.executable, "-m", "caseforum", "init"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True))
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("database ready" in out for out in outputs), outputs


def test_a_host_of_the_previous_version_uses_a_newer_schema(engine: Any, caplog: Any) -> None:
    """A rolling upgrade: the new version migrated the database (expand steps only), and
    a host still on the previous version restarts.  It does not fail on the revision it
    does not know; it says so and serves."""
    locations = _locations()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) "
                                "VALUES ('0099_from_the_future')"))
    with caplog.at_level(logging.WARNING, logger="caseforum.schema"):
        schema.upgrade(engine, locations)
    assert "newer than this version" in caplog.text
    assert "0099_from_the_future" in caplog.text


PROBE_MIGRATION = '''
"""A new version's migration that alters a table running requests use."""
import sqlalchemy as sa
from alembic import op

revision = "probe0001"
down_revision = None
branch_labels = ("probe",)
depends_on = None


def upgrade() -> None:
    op.add_column("event", sa.Column("probe", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("event", "probe")
'''


@pytest.mark.services
def test_a_migration_gives_up_on_a_busy_table_instead_of_queueing_requests(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caseforum.config import load_settings

    engine = make_engine(load_settings(data_dir=tmp_path, database_url=postgres_url,
                                       secret_key="u" * 32))
    schema.upgrade(engine, _locations(), create_if_empty=True)
    probe = tmp_path / "probe_migrations"
    probe.mkdir()
    (probe / "probe0001.py").write_text(PROBE_MIGRATION)
    monkeypatch.setattr(schema, "DDL_LOCK_TIMEOUT", "1s")
    reader = psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        reader.execute("SELECT count(*) FROM event").fetchone()  # a request's transaction
        with pytest.raises(errors.Unavailable, match="waited 1s for a table"):
            schema.upgrade(engine, [*_locations(), probe])
    finally:
        reader.close()
    assert "probe" not in {c["name"] for c in inspect(engine).get_columns("event")}
    schema.upgrade(engine, [*_locations(), probe])  # quiet again: it goes through
    assert "probe" in {c["name"] for c in inspect(engine).get_columns("event")}
    engine.dispose()
