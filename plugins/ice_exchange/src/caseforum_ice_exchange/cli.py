"""``caseforum keys``, ``caseforum peers`` and ``caseforum ice`` sub-commands.

Added through the ``register_commands`` hook. Errors print one line and exit 1,
like the core commands. No command ever prints or logs a private key.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import audit, delivery, keys
from .config import PLUGIN_NAME, IceRuntime
from .errors import IceError

DEMO_ROLES = (("JP", "both"), ("SG", "recipient"), ("AU", "donor"))


def _ice_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IceError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


def _runtime(ctx: Any) -> IceRuntime:
    return IceRuntime.build(engine=ctx.engine, settings=ctx.settings,
                            plugin_config=ctx.host.config(PLUGIN_NAME),
                            routes=ctx.host.transfer_routes(), backend=ctx.store)


def _group(cli: click.Group, name: str, help_text: str) -> click.Group:
    existing = cli.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name, help=help_text)
    cli.add_command(group)
    return group


def register(cli: click.Group) -> None:
    """Attach the plugin's commands to the ``caseforum`` group."""
    from caseforum.cli import one_line_errors, pass_ctx
    from caseforum.db import open_session

    keys_group = _group(cli, "keys", "Office key pairs for ICE exchanges.")
    peers_group = _group(cli, "peers", "Peer offices that run their own CaseForum instance.")
    ice_group = _group(cli, "ice", "ICE exchange administration.")

    @keys_group.command("generate")
    @click.option("--office", "office_code", required=True, help="ST.3 code, e.g. JP")
    @pass_ctx
    @one_line_errors
    @_ice_errors
    def keys_generate(ctx: Any, office_code: str) -> None:
        """Make an office's X25519 and Ed25519 key pairs (private halves stored wrapped)."""
        rt = _runtime(ctx)
        with open_session(ctx.engine) as session:
            row = keys.generate_keys(session, office_code=office_code, secret=rt.secret)
            session.commit()
            prints = keys.fingerprints(session, row.office_code) or {}
        click.echo(f"generated keys for {row.office_code}")
        click.echo(f"  encryption (X25519)  {prints.get('encryption')}")
        click.echo(f"  signing (Ed25519)    {prints.get('signing')}")
        click.echo("private keys are stored encrypted under the key-encryption secret; "
                   f"share 'caseforum keys export --office {row.office_code}' with peers")

    @keys_group.command("export")
    @click.option("--office", "office_code", required=True, help="ST.3 code, e.g. JP")
    @pass_ctx
    @one_line_errors
    @_ice_errors
    def keys_export(ctx: Any, office_code: str) -> None:
        """Print an office's public keys and fingerprints as JSON (for 'peers add')."""
        with open_session(ctx.engine) as session:
            record = keys.export_keys(session, office_code=office_code)
        click.echo(json.dumps(record, indent=2))

    @keys_group.command("list")
    @pass_ctx
    @one_line_errors
    def keys_list(ctx: Any) -> None:
        """Offices hosted here and peers, with their key fingerprints."""
        with open_session(ctx.engine) as session:
            for code in sorted(keys.local_offices(session)):
                prints = keys.fingerprints(session, code) or {}
                click.echo(f"{code}  hosted  signing {prints.get('signing')}  "
                           f"encryption {prints.get('encryption')}")
            for peer in keys.list_peers(session):
                prints = keys.fingerprints(session, peer.office_code) or {}
                click.echo(f"{peer.office_code}  peer    signing {prints.get('signing')}  "
                           f"encryption {prints.get('encryption')}  {peer.url}")

    @peers_group.command("add")
    @click.option("--office", "office_code", required=True, help="the peer office, e.g. SG")
    @click.option("--url", required=True, help="base address of the peer's CaseForum")
    @click.option("--keys", "keys_file", required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="the JSON printed by 'caseforum keys export' on the peer")
    @click.option("--role", "ice_role", default=None,
                  type=click.Choice(["donor", "recipient", "both"]),
                  help="the peer office's ICE role (default: keep, or both)")
    @pass_ctx
    @one_line_errors
    @_ice_errors
    def peers_add(ctx: Any, office_code: str, url: str, keys_file: Path,
                  ice_role: str | None) -> None:
        """Trust a peer office's public keys and deliver its parcels to URL."""
        try:
            record = json.loads(keys_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise click.ClickException(f"cannot read {keys_file}: {exc}") from None
        with open_session(ctx.engine) as session:
            peer = keys.add_peer(session, office_code=office_code, url=url, record=record,
                                 ice_role=ice_role)
            session.commit()
            prints = keys.fingerprints(session, peer.office_code) or {}
        click.echo(f"peer {peer.office_code} at {peer.url}")
        click.echo(f"  encryption (X25519)  {prints.get('encryption')}")
        click.echo(f"  signing (Ed25519)    {prints.get('signing')}")
        click.echo("compare these fingerprints with the peer's administrator by another "
                   "channel (telephone) before exchanging documents")

    @peers_group.command("list")
    @pass_ctx
    @one_line_errors
    def peers_list(ctx: Any) -> None:
        """Configured peers."""
        with open_session(ctx.engine) as session:
            for peer in keys.list_peers(session):
                click.echo(f"{peer.office_code}  {peer.url}")

    @ice_group.command("verify-audit")
    @click.option("--office", "office_code", default=None,
                  help="check only this office's chain")
    @pass_ctx
    @one_line_errors
    def verify_audit(ctx: Any, office_code: str | None) -> None:
        """Recompute the hash-chained audit logs; exit 1 at the first broken entry."""
        anchors = _runtime(ctx).audit_anchors  # the chains' lengths kept outside the database
        with open_session(ctx.engine) as session:
            reports = audit.verify_all(session, office_code.upper() if office_code else None,
                                       anchors)
        broken = [r for r in reports if not r.ok]
        for report in reports:
            if report.ok:
                click.echo(report.describe())
        if not reports:
            click.echo("no audit entries yet")
        if broken:
            raise click.ClickException(broken[0].describe())

    @ice_group.command("deliver")
    @pass_ctx
    @one_line_errors
    def deliver_now(ctx: Any) -> None:
        """Try every parcel that is due now (the web app does this in the background)."""
        rt = _runtime(ctx)
        wait = delivery.deliver_due(rt)
        with open_session(ctx.engine) as session:
            from sqlmodel import func, select

            from .models import IceParcel

            queued = session.exec(select(func.count()).select_from(IceParcel)
                                  .where(IceParcel.status == "queued")).one()
        click.echo(f"{queued} parcel(s) still queued"
                   + (f"; next attempt in {wait:.0f} s" if wait is not None else ""))

    @ice_group.command("demo")
    @pass_ctx
    @one_line_errors
    @_ice_errors
    def ice_demo(ctx: Any) -> None:
        """Demo set-up: JP donor and recipient, SG recipient, AU donor, keys for all three."""
        from caseforum import offices
        from caseforum.setup_db import init_database

        init_database(ctx.engine, ctx.host)
        rt = _runtime(ctx)
        with open_session(ctx.engine) as session:
            for code, role in DEMO_ROLES:
                office = offices.set_roles(session, code=code, roles=None, ice_role=role)
                made = ""
                if not keys.is_local(session, code):
                    keys.generate_keys(session, office_code=code, secret=rt.secret,
                                       actor="demo")
                    made = ", keys generated"
                click.echo(f"{office.code}: ICE {role}{made}")
            session.commit()

