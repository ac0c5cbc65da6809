"""Cold start: ``caseforum serve`` skips the schema check only when nothing changed;
``caseforum init`` makes a new database from the models, as the migrations would;
the heavy libraries are imported only on the paths that use them; most routes are built
on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from starlette.websockets import WebSocketDisconnect

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


def _command_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
    env["CASEFORUM_DATA_DIR"] = str(data_dir)
    return env


def _caseforum(*args: str, data_dir: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "caseforum", *args], env=_command_env(data_dir),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _snapshot(url: str) -> dict[str, Any]:
    """What a migration or a query could notice of a schema, and the rows the
    migrations insert (the offices are compared separately)."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        tables: dict[str, Any] = {}
        for table in sorted(insp.get_table_names()):
            tables[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c["primary_key"],
                             c["default"]) for c in insp.get_columns(table)],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(table)),
                "unique": sorted(tuple(u["column_names"])
                                 for u in insp.get_unique_constraints(table)),
                "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                        tuple(f["referred_columns"]))
                                       for f in insp.get_foreign_keys(table)),
            }
        with engine.connect() as connection:
            versions = sorted(r[0] for r in connection.execute(
                text("SELECT version_num FROM alembic_version")))
            audit = [tuple(r) for r in connection.execute(text("SELECT * FROM ice_audit_head"))]
        return {"tables": tables, "versions": versions, "audit": audit}
    finally:
        engine.dispose()


def test_init_on_an_empty_folder_makes_the_schema_the_migrations_make(tmp_path: Path) -> None:
    from caseforum.config import Settings
    from caseforum.db import make_engine
    from caseforum.setup_db import init_database

    quick = tmp_path / "quick"
    assert "(20 offices added)" in _caseforum("init", data_dir=quick)
    # init records the schema it made, so the first serve does not load Alembic for it
    serve_checks_schema = ("from caseforum.cli import Context\n"
                           "ctx = Context()\nctx.upgrade_schema(ctx.host)")
    assert _imported(serve_checks_schema, ["alembic"], quick) == []
    # without that record, init runs Alembic: the stamped heads are accepted, nothing redone
    (quick / "schema-stamp.json").unlink()
    assert "(0 offices added)" in _caseforum("init", data_dir=quick)

    migrated = tmp_path / "migrated"
    migrated.mkdir()
    engine = make_engine(Settings(data_dir=migrated, secret_key="m" * 32))
    host = PluginHost()
    host.load()
    try:
        init_database(engine, host)  # the migrations, one by one
    finally:
        engine.dispose()
    made, expected = (_snapshot(f"sqlite:///{folder / 'caseforum.db'}")
                      for folder in (quick, migrated))
    assert made["versions"] == expected["versions"] and len(made["versions"]) >= 2
    assert made["audit"] == expected["audit"] and made["audit"]
    assert made["tables"].keys() == expected["tables"].keys()
    for table, shape in expected["tables"].items():
        assert made["tables"][table] == shape, table


def test_an_unusual_migration_makes_init_run_alembic(engine: Any, locations: list[Any],
                                                     tmp_path: Path) -> None:
    """A migration creating a table the models do not describe: the database cannot
    be made from the models, so the migrations run as before."""
    plugin = tmp_path / "plugin_migrations"
    plugin.mkdir()
    (plugin / "probe0001.py").write_text(MIGRATION)
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = create_engine(f"sqlite:///{fresh_dir / 'caseforum.db'}")
    try:
        assert not schema.create_empty(fresh, [*map(str, locations), str(plugin)])
        schema.upgrade(fresh, [*locations, plugin], create_if_empty=True)
        assert inspect(fresh).has_table("probe_table")
        assert inspect(fresh).has_table("post")
    finally:
        fresh.dispose()


HEAVY_PROBE = """
import json, sys
{setup}
print(json.dumps(sorted(m for m in {modules} if m in sys.modules)))
"""


def _imported(setup: str, modules: list[str], data_dir: Path) -> list[str]:
    code = HEAVY_PROBE.format(setup=setup, modules=modules)
    done = subprocess.run([sys.executable, "-c", code], env=_command_env(data_dir),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_app_leaves_the_heavy_libraries_alone(tmp_path: Path) -> None:
    """Each of these is needed on a few paths only (PDFs, ICE signatures, search,
    Redis, PostgreSQL, migrations, outbound HTTP); imported eagerly, every start
    pays for them."""
    heavy = ["pypdf", "fpdf", "nacl", "whoosh", "redis", "psycopg", "alembic", "httpx",
             "markdown_it", "nh3"]
    assert _imported("import caseforum.app", heavy, tmp_path) == []


STARTED_APP = """
import asyncio
from caseforum.cli import cli
cli.main(['init'], prog_name='caseforum', standalone_mode=False)
from caseforum.app import create_app

async def up():
    app, sent, asked = create_app(), [], asyncio.Event()

    async def receive():
        if not asked.is_set():
            asked.set()
            return {'type': 'lifespan.startup'}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    task = asyncio.create_task(app({'type': 'lifespan', 'state': {}}, receive, send))
    while not sent:
        await asyncio.sleep(0.001)
    assert sent[0]['type'] == 'lifespan.startup.complete', sent
    task.cancel()

asyncio.run(up())
"""


def test_a_started_app_leaves_them_alone_too(tmp_path: Path) -> None:
    """Plugins loaded, the app made and its start-up done (ready to answer): still
    none of them.  The ICE delivery loop, the peer sources and the One Portal Dossier
    client bring theirs in when they first run."""
    heavy = ["httpx", "nacl", "pypdf", "fpdf", "whoosh", "markdown_it"]
    assert _imported(STARTED_APP, heavy, tmp_path / "up") == []


def test_init_on_an_empty_folder_loads_neither_fastapi_nor_alembic(tmp_path: Path) -> None:
    setup = ("from caseforum.cli import cli\n"
             "cli.main(['init'], prog_name='caseforum', standalone_mode=False)")
    assert _imported(setup, ["fastapi", "alembic", "uvicorn"], tmp_path / "new") == []


# Routes built on first use (web/deferred.py) -----------------------------------------


def test_the_health_check_answers_before_the_other_routes_are_built(app: Any) -> None:
    client = TestClient(app)  # no lifespan: no warm-up, so only requests build them
    assert client.get("/healthz").status_code == 200
    assert not app.state.deferred_routes.loaded
    page = client.get("/login")  # the first request for a deferred route is answered
    assert page.status_code == 200 and 'name="password"' in page.text
    assert app.state.deferred_routes.loaded
    missing = client.get("/no/such/page", headers={"accept": "application/json"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_api_description_lists_routes_not_built_yet(app: Any) -> None:
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert "/api/v1/dossiers/{office}/{number}" in paths and "/api/v1/me" in paths


def test_a_websocket_can_be_the_first_request(app: Any) -> None:
    client = TestClient(app)
    origin = {"origin": "http://testserver"}
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(
            "/ws/forum", headers=origin):
        pass  # the live endpoint's own answer, not the router's "no such route"
    assert (closed.value.code, closed.value.reason) == (4403, "log in first")


def test_start_up_builds_the_routes_without_waiting_for_a_request(app: Any) -> None:
    with TestClient(app):
        deadline = time.monotonic() + 5
        while not app.state.deferred_routes.loaded and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.state.deferred_routes.loaded


# Work after start-up waits for the requests in hand (web/deferred.AfterStartUp) -------


def _hold_requests(work: Any) -> tuple[Any, Any]:
    """An app whose requests last until ``release`` is set, counted for ``work``."""
    import asyncio

    from caseforum.web.deferred import RequestsInHand

    release = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()

    return RequestsInHand(slow, work=work), release


def test_a_request_in_hand_is_answered_before_the_warm_up() -> None:
    """The warm-up (building routes, starting consumers) holds the event loop for a
    while: a health check asked as the server comes up must not wait behind it."""
    import asyncio

    from caseforum.web.deferred import AfterStartUp

    async def scenario() -> list[str]:
        work, done = AfterStartUp(), []
        app, release = _hold_requests(work)
        work.start([(0.02, lambda: done.append("warm-up"))])
        request = asyncio.create_task(app({"type": "http"}, None, None))
        await asyncio.sleep(0.1)  # the warm-up fell due while the request was in hand
        done.append("request still in hand")
        release.set()
        await request
        await asyncio.sleep(0.02)
        await work.stop()
        return done

    assert asyncio.run(scenario()) == ["request still in hand", "warm-up"]


def test_a_request_that_never_ends_does_not_put_the_warm_up_off_for_good(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from caseforum.web import deferred

    monkeypatch.setattr(deferred, "PATIENCE", 0.05)

    async def scenario() -> list[str]:
        work, done = deferred.AfterStartUp(), []
        app, _release = _hold_requests(work)
        work.start([(0.01, lambda: done.append("warm-up"))])
        request = asyncio.create_task(app({"type": "http"}, None, None))
        await asyncio.sleep(0.3)
        request.cancel()
        await work.stop()
        return done

    assert asyncio.run(scenario()) == ["warm-up"]
