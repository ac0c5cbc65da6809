"""Create or upgrade the database schema with Alembic (core and plugin branches)."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from caseforum import errors

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
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
            stamp: Path | None = None, create_if_empty: bool = False,
            load_models: Callable[[], object] | None = None) -> None:
    """Bring the schema to the newest revision of every branch; safe to repeat.

    With ``stamp`` (a file in the data folder; ``caseforum serve`` passes one) the
    check is skipped when neither the migration files nor the database's revisions
    changed since the last upgrade recorded there: loading Alembic and every
    migration script to learn "nothing to do" was a good part of each start-up.

    With ``create_if_empty`` (``caseforum init``, ``demo`` and ``serve``) an empty
    database is made from the models and stamped at the heads instead
    (:func:`create_empty`, which calls ``load_models`` first: the plugins' tables,
    ``PluginHost.models``), when the migrations allow it."""
    extra = [str(p) for p in extra_locations]
    if stamp is not None and _stamped(engine, extra, stamp):
        return  # nothing changed since this host last checked: no lock, no Alembic
    with upgrade_lock(engine):  # another host may be upgrading the same database now
        if create_if_empty and create_empty(engine, extra, load_models):
            _write_stamp(engine, extra, stamp)
            return
        from alembic import command

        cfg = alembic_config(extra)
        newer = _unknown_revisions(engine, cfg)
        if newer:
            # a rolling upgrade: a newer version on another host migrated already (expand
            # migrations keep the schema usable by this one); nothing to do here
            log.warning("the database schema is newer than this version of CaseForum "
                        "(revisions %s are not installed here): using it as it is; "
                        "install the new version on this host too", ", ".join(newer))
            return
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # a migration that cannot have its table at once gives up instead of
                # queueing every request behind its lock (docs/deploy.md, upgrades)
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
            cfg.attributes["connection"] = connection
            try:
                command.upgrade(cfg, "heads")
            except OperationalError as exc:
                if "lock timeout" not in str(exc):
                    raise
                raise errors.Unavailable(
                    f"a migration waited {DDL_LOCK_TIMEOUT} for a table that running "
                    "requests hold and gave up (nothing was changed): run the command "
                    "again, when the instance is quieter") from None
        _write_stamp(engine, extra, stamp)


#: an arbitrary key of PostgreSQL's advisory locks ("cf_schem"), held by whoever upgrades
UPGRADE_LOCK = 0x63665F736368656D
#: how long a second host waits for another's upgrade before it gives up
UPGRADE_WAIT_SECONDS = 900.0
#: how long one migration step may wait for a table lock (PostgreSQL ``lock_timeout``)
DDL_LOCK_TIMEOUT = "15s"


@contextlib.contextmanager
def upgrade_lock(engine: Engine, wait: float | None = None) -> Iterator[None]:
    """One schema upgrade at a time per database: hosts started together, or
    ``caseforum init`` run while a host starts, would otherwise create the same tables
    or run the same migration twice at once.  On PostgreSQL a session advisory lock on
    a connection of its own (released if the process dies); SQLite's write lock does
    this there.  A waiter says once that it waits, and gives up after ``wait`` seconds
    with an error that says why."""
    if engine.dialect.name != "postgresql":
        yield
        return
    limit = UPGRADE_WAIT_SECONDS if wait is None else wait
    deadline = time.monotonic() + limit
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        told = False
        while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                     {"key": UPGRADE_LOCK}).scalar():
            if not told:
                log.warning("another process is upgrading the database schema: waiting "
                            "for it (at most %.0f s)", limit)
                told = True
            if time.monotonic() > deadline:
                raise errors.Unavailable(
                    f"another process has been upgrading the database schema for over "
                    f"{limit:.0f} s; wait for it to finish (or stop it), then try again")
            time.sleep(0.25)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK})


def _stamped(engine: Engine, extra: list[str], stamp: Path) -> bool:
    """Whether ``stamp`` records the migration files and revisions there are now."""
    try:
        return bool(json.loads(stamp.read_text()) == _state(engine, extra))
    except (OSError, ValueError):
        return False


def _write_stamp(engine: Engine, extra: list[str], stamp: Path | None) -> None:
    if stamp is not None:
        with contextlib.suppress(OSError):  # a read-only data folder: check every time
            stamp.write_text(json.dumps(_state(engine, extra)))


def _unknown_revisions(engine: Engine, cfg: Config) -> list[str]:
    """Revisions in the database that no installed migration names (a newer version
    upgraded it)."""
    from alembic.script import ScriptDirectory

    if not inspect(engine).has_table("alembic_version"):
        return []
    with engine.connect() as connection:
        revisions = [row[0] for row in connection.execute(
            text("SELECT version_num FROM alembic_version"))]
    known = {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
    return sorted(set(revisions) - known)


#: migration operations whose effect the models describe (anything else: run Alembic)
_DDL_OPS = frozenset({"create_table", "create_index", "batch_alter_table", "add_column",
                      "f", "alter_column", "create_foreign_key", "create_unique_constraint"})


class _NotPlain(Exception):
    """A migration does something the models cannot reproduce."""


def create_empty(engine: Engine, extra: Iterable[str] = (),
                 load_models: Callable[[], object] | None = None) -> bool:
    """Make an empty database from the models and stamp every branch's head, in one
    transaction; ``False`` (nothing done) when the database has tables already or a
    migration is not plain.

    Running the migrations one by one (Alembic and every script loaded, SQLite's
    batch mode copying tables) was most of ``caseforum init`` on a new folder.  It
    is equivalent only when the migrations create exactly the tables of the models
    and do nothing else but add columns and indexes to them (which
    tests/test_schema.py holds to the models) and insert constant rows, which are
    run here as they are; anything else falls back to Alembic."""
    if inspect(engine).get_table_names():
        return False
    try:
        scripts = _in_order([_read_script(path) for path in _scripts(
            [str(MIGRATIONS / "versions"), *extra])])
    except (OSError, SyntaxError, ValueError, _NotPlain):
        return False
    revisions = {rev for rev, *_ in scripts}
    below = {down for _, downs, _, _ in scripts for down in downs}
    heads = sorted(revisions - below)
    created = {name for *_, tables, _ in scripts for name in tables}
    from sqlmodel import SQLModel

    import caseforum.models  # noqa: F401  (registers the core tables)

    if load_models is not None:
        load_models()  # and the plugins'
    if not scripts or len(revisions) != len(scripts) or created != set(SQLModel.metadata.tables):
        return False
    with engine.begin() as connection:
        SQLModel.metadata.create_all(connection)
        for *_, statements in scripts:
            for statement in statements:
                connection.exec_driver_sql(statement)
        connection.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
        for head in heads:
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                               {"v": head})
    return True


Script = tuple[str, tuple[str, ...], set[str], list[str]]


def _scripts(folders: list[str]) -> list[str]:
    return sorted(os.path.join(folder, name) for folder in folders
                  for name in os.listdir(folder)
                  if name.endswith(".py") and not name.startswith("_"))


def _read_script(path: str) -> Script:
    """(revision, down revisions, tables created, constant SQL run) of one script."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names: dict[str, object] = {}
    upgrade_fn = None
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            names[target.id] = ast.literal_eval(value)  # type: ignore[arg-type]
        if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
            upgrade_fn = node
    revision, down = names.get("revision"), names.get("down_revision")
    if not isinstance(revision, str) or upgrade_fn is None:
        raise _NotPlain(path)
    downs = (down,) if isinstance(down, str) else tuple(down or ())  # type: ignore[arg-type]
    tables: set[str] = set()
    statements: list[str] = []
    for call in ast.walk(upgrade_fn):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        op = call.func.attr
        if op == "execute" and len(call.args) == 1 and not call.keywords:
            statements.append(_constant(call.args[0]))
        elif op == "create_table" and call.args:
            tables.add(_constant(call.args[0]))
        elif op not in _DDL_OPS and not _is_sa(call.func):
            raise _NotPlain(f"{path}: {op}")
    return revision, downs, tables, statements


def _is_sa(func: ast.Attribute) -> bool:
    """``sa.Column(...)``, ``sqlmodel.sql.sqltypes.AutoString()``: building blocks,
    not operations."""
    root: ast.expr = func
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in ("sa", "sqlmodel", "postgresql")


def _constant(node: ast.expr) -> str:
    """A string literal, or literals joined with ``+`` and repeated with ``*``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant(node.left) + _constant(node.right)
    if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)
            and isinstance(node.right, ast.Constant) and isinstance(node.right.value, int)
            and 0 <= node.right.value <= 1000):
        return _constant(node.left) * node.right.value
    raise _NotPlain(ast.dump(node)[:80])


def _in_order(scripts: list[Script]) -> list[Script]:
    """The scripts, each after the ones it revises (their constant SQL in that order)."""
    done: set[str] = set()
    ordered: list[Script] = []
    pending = list(scripts)
    while pending:
        ready = [s for s in pending if set(s[1]) <= done]
        if not ready:
            raise _NotPlain("a revision revises one that is not there")
        for script in ready:
            ordered.append(script)
            done.add(script[0])
            pending.remove(script)
    return ordered


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
