"""The ``caseforum`` command.  Errors print one line and exit non-zero."""

from __future__ import annotations

import functools
import gc
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import select

from caseforum import __version__, errors, offices, terminal
from caseforum.config import SettingsError, load_settings
from caseforum.db import make_engine, open_session
from caseforum.i18n import Msg
from caseforum.models import User
from caseforum.plugin_host import PluginHost
from caseforum.storage_backends import StorageBackend

#: what a user can fix: bad settings, and every error of the family (caseforum.errors);
#: anything else is a bug and keeps its traceback
EXPECTED_ERRORS = (SettingsError, errors.CaseForumError)


def _default_language() -> str:
    """The instance's ``default_locale`` when the command has read the settings."""
    click_ctx = click.get_current_context(silent=True)
    found = click_ctx.find_object(Context) if click_ctx is not None else None
    settings = getattr(found, "_settings", None)
    return str(getattr(settings, "default_locale", "en"))


def say(message: object) -> str:
    """A message in the terminal's language (``caseforum.terminal``)."""
    return terminal.say(message, _default_language())


def echo(message: object, *, err: bool = False) -> None:
    click.echo(say(message), err=err)


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can fix into ``Error: ...`` and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (OperationalError, ProgrammingError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(say(Msg(
                "database error (%(reason)s): is it reachable, and did 'caseforum init' run?",
                reason=reason))) from None
        except Exception as exc:
            if isinstance(exc, EXPECTED_ERRORS):
                message = getattr(exc, "message", None)
                raise click.ClickException(
                    say(message if isinstance(message, Msg) else str(exc))) from None
            raise

    return wrapper


class Context:
    """Settings, engine and plugins, made on first use."""

    def __init__(self) -> None:
        self._settings: Any = None
        self._engine: Any = None
        self._host: PluginHost | None = None
        self._store: StorageBackend | None = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
            from caseforum import passwords

            passwords.configure(self._settings.password_hash_profile)
        return self._settings

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = make_engine(self.settings)
        return self._engine

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            from caseforum.db import disabled_plugins

            self._host = PluginHost(self.settings.plugins, data_dir=self.settings.data_dir)
            logging.getLogger("caseforum.plugin_host").setLevel(logging.CRITICAL)
            self._host.load(disabled=disabled_plugins(self.engine))
        return self._host

    @property
    def store(self) -> StorageBackend:
        """The storage backend the settings choose (``[storage] backend``)."""
        if self._store is None:
            from caseforum.storage_backends import open_store

            self._store = open_store(self.settings, self.host.storage_backends())
        return self._store

    def upgrade_schema(self, host: PluginHost) -> int:
        """Create or upgrade the schema and add missing reference offices (``init``,
        ``demo`` and ``serve`` alike).  What was checked is recorded in the data folder
        (``schema.upgrade``), so that the next ``serve`` need not load Alembic to learn
        that nothing changed; returns how many offices were added."""
        from caseforum.setup_db import init_database

        return init_database(self.engine, host, create_if_empty=True,
                             stamp=self.settings.data_dir / "schema-stamp.json")


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group()
@click.version_option(__version__, prog_name="caseforum")
def cli() -> None:
    """CaseForum: work sharing between patent offices."""


@cli.command()
@pass_ctx
@one_line_errors
def init(ctx: Context) -> None:
    """Create or upgrade the database, load the reference offices and prepare the
    file store (an S3 bucket is created when missing)."""
    added = ctx.upgrade_schema(ctx.host)
    echo(Msg("database ready at %(url)s (%(added)d offices added)",
             url=ctx.settings.sqlalchemy_url.split("@")[-1], added=added))
    echo(Msg("file store ready: %(where)s", where=ctx.store.prepare()))


@cli.command()
@pass_ctx
@one_line_errors
def demo(ctx: Context) -> None:
    """Add demo accounts and content (safe to repeat)."""
    from caseforum.app import build_doc_types
    from caseforum.demo_dossiers import DEMO_START
    from caseforum.setup_db import DEMO_PASSWORD, DEMO_USERS, load_demo

    ctx.upgrade_schema(ctx.host)
    created = load_demo(ctx.engine, store=ctx.store, doc_types=build_doc_types(ctx.host))
    echo(Msg("demo data ready (%(num)d accounts added)", num=len(created)))
    echo(Msg("demo log-ins (password: %(password)s):", password=DEMO_PASSWORD))
    for username, office, role, _ in DEMO_USERS:
        click.echo(f"  {username:<14} {office}  {role}")
    echo(Msg("demo dossiers to start with: %(addresses)s", addresses=", ".join(
        f"/dossiers/{office}/{number}" for office, number in DEMO_START)))


#: see :func:`serve`
WORKER_HEALTHCHECK_SECONDS = 30


@cli.command()
@click.option("--host", "bind", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
@one_line_errors
def serve(ctx: Context, bind: str, port: int, workers: int) -> None:
    """Serve the web application."""
    import uvicorn

    from caseforum.app import disabled_plugins
    from caseforum.web.worker_metrics import prepare_run

    # plugin failures are logged, as they should be
    host = PluginHost(ctx.settings.plugins, data_dir=ctx.settings.data_dir)
    host.load(disabled=disabled_plugins(ctx.engine))
    ctx.upgrade_schema(host)
    if workers > 1 and ctx.settings.is_sqlite:
        echo(Msg("note: several workers share one SQLite file; PostgreSQL and Redis "
                 "scale better (CASEFORUM_DATABASE_URL, CASEFORUM_REDIS_URL)"), err=True)
    # the host's figures start at zero; several workers add theirs up in files there
    try:
        prepare_run(ctx.settings.worker_metrics_dir, workers)
    except OSError as exc:  # the data folder's metrics folder cannot be emptied
        raise click.ClickException(str(exc)) from None
    if workers > 1 and sys.version_info < (3, 12):
        echo(Msg("note: under load, worker processes on Python 3.11 crashed in CaseForum's "
                 "measurements and on Python 3.12 did not; serve several workers on "
                 "Python 3.12 (docs/deploy.md, \"Python version\")"), err=True)
    click.echo(f"CaseForum {__version__} on http://{bind}:{port}/")
    if workers == 1:
        # the app is made here, from the settings and plugins already loaded for the
        # schema check, rather than loading them all again (cold start)
        from caseforum.app import create_app

        ctx.engine.dispose()
        uvicorn.run(create_app(ctx.settings, plugins=host), host=bind, port=port,
                    log_level="info", proxy_headers=False)
        return
    gc.enable()  # this process only supervises the workers, each of which starts afresh
    # uvicorn kills a worker that has not answered its supervisor's ping within this
    # many seconds; its default (5 s) killed busy workers mid-request when every core
    # was rendering pages (the scale benchmark lost 30 thread pages that way), while
    # a worker that is truly stuck is still replaced within half a minute
    uvicorn.run("caseforum.app:create_app", factory=True, host=bind, port=port,
                workers=workers, log_level="info", proxy_headers=False,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS)


@cli.command("import")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--office", default=None, help="refuse the package unless it is for this office")
@pass_ctx
@one_line_errors
def import_cmd(ctx: Context, package: str, office: str | None) -> None:
    """Import a bulk package (ZIP with manifest.json): all of it or nothing."""
    from caseforum.app import build_doc_types
    from caseforum.dossiers.packages import PackageLimits, import_package

    with open(package, "rb") as stream, open_session(ctx.engine) as session:
        summary = import_package(
            session, ctx.store, stream=stream, office=office.upper() if office else None,
            registry=build_doc_types(ctx.host),
            max_bytes=ctx.settings.max_upload_mb * 1024 * 1024, actor_id=None,
            limits=PackageLimits.from_settings(ctx.settings))
    if summary["already_imported"]:
        echo(Msg("already imported (%(dossiers)d dossiers): nothing changed",
                 dossiers=summary["dossiers"]))
    else:
        echo(Msg("imported %(dossiers)d dossiers, %(documents)d documents, %(citations)d "
                 "citations for %(office)s", dossiers=summary["dossiers"],
                 documents=summary["documents"], citations=summary["citations"],
                 office=summary["office"]))


@cli.command()
@click.option("--min-age-minutes", type=click.IntRange(0), default=None,
              help="remove only files at least this old [default: sweep_min_age_minutes]")
@pass_ctx
@one_line_errors
def sweep(ctx: Context, min_age_minutes: int | None) -> None:
    """Remove files left in the file store by interrupted uploads."""
    from caseforum.sweeper import sweep as run_sweep

    minutes = ctx.settings.sweep_min_age_minutes if min_age_minutes is None else min_age_minutes
    click.echo(run_sweep(ctx.engine, ctx.store, min_age_seconds=minutes * 60))


@cli.command()
@pass_ctx
@one_line_errors
def reindex(ctx: Context) -> None:
    """Rebuild the search index from the database (a fresh folder, swapped in at the end)."""
    from caseforum.app import build_doc_types
    from caseforum.search.indexer import rebuild

    with click.progressbar(length=1, label="indexing dossiers and threads",
                           show_pos=True, file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        items = rebuild(ctx.engine, ctx.settings.data_dir / "search", progress,
                        plugin_items=ctx.host.search_items,
                        describe=build_doc_types(ctx.host).describe)
    echo(Msg("indexed %(num)d items", num=items))


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(label, 0)} {label}"
                     for label in ("dossiers", "documents", "posts", "parcels"))


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
@one_line_errors
def backup(ctx: Context, dest: Path) -> None:
    """Write the database and stored files to one archive (safe while serving)."""
    from caseforum.backup import backup as make_backup

    manifest = make_backup(ctx.engine, ctx.settings.data_dir, dest, ctx.store)
    click.echo(f"backed up {_counted(manifest['counts'])} and "
               f"{len(manifest['files']) - 1} files to {dest}")


@cli.command()
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace an instance that holds content")
@pass_ctx
@one_line_errors
def restore(ctx: Context, src: Path, force: bool) -> None:
    """Restore an archive made by 'backup': all of it or nothing."""
    from caseforum.backup import restore as run_restore

    # every installed plugin's migrations, read without opening the target database
    # (a restore into a new folder leaves nothing behind when it is refused)
    host = PluginHost(ctx.settings.plugins, data_dir=ctx.settings.data_dir)
    logging.getLogger("caseforum.plugin_host").setLevel(logging.CRITICAL)
    host.load(disabled=set())
    store = None  # the local store is the data folder itself, restored as before
    if ctx.settings.storage.backend != "local":
        from caseforum.storage_backends import open_store

        store = open_store(ctx.settings, host.storage_backends())
    summary = run_restore(ctx.engine, ctx.settings.data_dir, src, force=force,
                          migrations=host.migrations(), store=store)
    click.echo(f"restored {_counted(summary['counts'])} (backup of "
               f"{summary['created_at']}, CaseForum {summary['caseforum_version']})")
    if summary["upgraded"]:
        echo(Msg("schema upgraded to this version"))
    echo(Msg("the search index is rebuilt at the next start (or run 'caseforum reindex')"))


# users ---------------------------------------------------------------------------


@cli.group()
def users() -> None:
    """Manage user accounts."""


@users.command("create")
@click.argument("username")
@click.option("--office", "office_code", required=True, help="ST.3 code, e.g. JP")
@click.option("--role", required=True, help="examiner, office_admin, platform_admin or bot")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--name", "display_name", default="", help="display name")
@click.option("--email", default="", help="e-mail address for notifications")
@pass_ctx
@one_line_errors
def users_create(ctx: Context, username: str, office_code: str, role: str,
                 password_stdin: bool, display_name: str, email: str) -> None:
    """Create a user.  Without --password-stdin the user can only use API tokens."""
    from caseforum import accounts

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password_stdin and not password:
        raise click.ClickException(say(Msg("no password on standard input")))
    with open_session(ctx.engine) as session:
        user = accounts.create_user(session, username=username, office_code=office_code,
                                    role=role, password=password, display_name=display_name,
                                    email=email)
        session.commit()
        echo(Msg("created %(user)s (%(office)s, %(role)s)", user=user.username,
                 office=user.office_code, role=user.role.value))


@users.command("list")
@pass_ctx
@one_line_errors
def users_list(ctx: Context) -> None:
    """List users."""
    with open_session(ctx.engine) as session:
        for user in session.exec(select(User).order_by(User.office_code, User.username)):
            state = "active" if user.is_active else "disabled"
            click.echo(f"{user.username:<20} {user.office_code}  {user.role.value:<15} {state}")


@users.command("disable")
@click.argument("username")
@pass_ctx
@one_line_errors
def users_disable(ctx: Context, username: str) -> None:
    """Disable a user and revoke their sessions."""
    from caseforum import accounts

    with open_session(ctx.engine) as session:
        user = _user(session, username)
        accounts.set_active(session, user=user, active=False, actor_id=None)
        session.commit()
        echo(Msg("disabled %(user)s", user=user.username))


def _user(session: Any, username: str) -> User:
    user = session.exec(select(User).where(User.username == username.lower())).first()
    if user is None:
        raise click.ClickException(say(Msg(
            "unknown user %(user)r: see 'caseforum users list'", user=username)))
    return user


# tokens --------------------------------------------------------------------------


@cli.group()
def tokens() -> None:
    """Manage API tokens for office machine clients."""


@tokens.command("create")
@click.argument("username")
@click.option("--scope", "scopes", multiple=True, required=True,
              help="dossiers:read, dossiers:write, forum, ice or admin (repeatable)")
@click.option("--expires-days", type=int, default=90, show_default=True)
@click.option("--name", default="", help="what the token is for")
@pass_ctx
@one_line_errors
def tokens_create(ctx: Context, username: str, scopes: tuple[str, ...], expires_days: int,
                  name: str) -> None:
    """Create a token; it is printed once, alone on the last line."""
    from caseforum import accounts

    with open_session(ctx.engine) as session:
        user = _user(session, username)
        token, plain = accounts.create_token(session, user=user, scopes=list(scopes),
                                             expires_days=expires_days, name=name)
        session.commit()
        if token.expires_at:
            echo(Msg("token for %(user)s, scopes %(scopes)s, expires %(date)s",
                     user=user.username, scopes=token.scopes,
                     date=f"{token.expires_at:%Y-%m-%d}"))
        else:
            echo(Msg("token for %(user)s, scopes %(scopes)s, no expiry", user=user.username,
                     scopes=token.scopes))
        click.echo(plain)


# offices -------------------------------------------------------------------------


@cli.group("offices")
def offices_group() -> None:
    """Manage participating offices."""


@offices_group.command("list")
@pass_ctx
@one_line_errors
def offices_list(ctx: Context) -> None:
    """List offices with their roles."""
    with open_session(ctx.engine) as session:
        for office in offices.list_offices(session):
            roles = ",".join(office.roles) or "-"
            click.echo(f"{office.code}  {roles:<20} {office.name}")


@offices_group.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--role", "roles", multiple=True, help="providing and/or accessing")
@pass_ctx
@one_line_errors
def offices_add(ctx: Context, code: str, name: str, roles: tuple[str, ...]) -> None:
    """Add an office."""
    with open_session(ctx.engine) as session:
        office = offices.add_office(session, code=code, name=name, roles=list(roles))
        session.commit()
        echo(Msg("added %(office)s (%(roles)s)", office=office.code,
                 roles=",".join(office.roles) or "no role"))


@offices_group.command("set-roles")
@click.argument("code")
@click.option("--role", "roles", multiple=True,
              help="providing and/or accessing; 'none' for no role; omitted: roles unchanged")
@click.option("--public-access/--no-public-access", default=None)
@click.option("--ice-role", default=None, help="none, donor, recipient or both")
@pass_ctx
@one_line_errors
def offices_set_roles(ctx: Context, code: str, roles: tuple[str, ...],
                      public_access: bool | None, ice_role: str | None) -> None:
    """Change an office's roles."""
    with open_session(ctx.engine) as session:
        office = offices.set_roles(session, code=code, roles=list(roles) if roles else None,
                                   public_access=public_access, ice_role=ice_role)
        session.commit()
        click.echo(f"{office.code}: {','.join(office.roles) or 'no role'}, "
                   f"public access {'on' if office.public_access else 'off'}, "
                   f"ICE {office.ice_role.value}")


@offices_group.command("group")
@click.argument("name")
@click.option("--office", "codes", multiple=True, required=True, help="a member (repeatable)")
@pass_ctx
@one_line_errors
def offices_group_add(ctx: Context, name: str, codes: tuple[str, ...]) -> None:
    """Name a group of offices (e.g. a regional cooperation group) for forum categories."""
    from caseforum.forum.service import create_office_group

    with open_session(ctx.engine) as session:
        group = create_office_group(session, name=name, offices=list(codes))
        session.commit()
        click.echo(f"group {group.name}: {' '.join(group.offices)}")


@offices_group.command("category")
@click.argument("category")
@click.option("--office", "codes", multiple=True,
              help="an office that may read it (repeatable); none: every office")
@pass_ctx
@one_line_errors
def offices_category(ctx: Context, category: str, codes: tuple[str, ...]) -> None:
    """Set which offices may read a forum category."""
    from sqlmodel import select

    from caseforum.forum.service import ForumError, set_category_offices
    from caseforum.models import Category

    with open_session(ctx.engine) as session:
        found = session.exec(select(Category).where(Category.name == category)).first()
        if found is None:
            raise ForumError(f"unknown category {category!r}")
        set_category_offices(session, category=found, offices=list(codes))
        session.commit()
        click.echo(f"{found.name}: {' '.join(found.offices) or 'every office'}")


# plugins -------------------------------------------------------------------------


@cli.group()
def plugins() -> None:
    """Inspect plugins."""


@plugins.command("list")
@pass_ctx
@one_line_errors
def plugins_list(ctx: Context) -> None:
    """List plugins: name, version, hooks, state."""
    for record in sorted(ctx.host.records.values(), key=lambda r: r.name):
        line = f"{record.name:<18} {record.version:<8} {record.state:<9} {','.join(record.hooks)}"
        if record.error:
            line += f"  ({record.error})"
        click.echo(line)


def _plugin_commands() -> None:
    """Let plugins add sub-commands (``register_commands``).  Settings errors
    are left for the command itself to report."""
    try:
        settings = load_settings()
    except SettingsError:
        return
    from caseforum.db import disabled_plugins

    host = PluginHost(settings.plugins, data_dir=settings.data_dir)
    logging.getLogger("caseforum.plugin_host").setLevel(logging.CRITICAL)
    try:
        disabled = disabled_plugins(make_engine(settings))
    except Exception:  # no database yet: 'init' has not run
        disabled = set()
    host.load(disabled=disabled)
    host.commands(cli=cli)


def main() -> None:
    first = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if first is None or first not in cli.commands:
        # only a plugin's own command (or the help listing them) needs the plugins'
        # commands; `init`, `serve` ... start without loading them (cold start)
        _plugin_commands()
    if first != "serve":
        gc.enable()  # off for start-up (caseforum.entry); serve turns it on once it is up
    cli(prog_name="caseforum")
