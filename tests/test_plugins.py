"""The plugin system: loading, failure, state, and every hook (``test_hook_*``).

Tests register a plugin object with ``host.add`` and remove it afterwards, as
a plugin author would in their own tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import inspect
from sqlmodel import select

from caseforum import hookimpl
from caseforum.app import create_app
from caseforum.config import Settings
from caseforum.db import make_engine, open_session
from caseforum.events import emit, process_pending
from caseforum.models import PluginState
from caseforum.plugin_host import DEFAULT_PLUGINS, PluginHost
from caseforum.setup_db import init_database
from tests.conftest import login


@pytest.fixture
def host() -> PluginHost:
    h = PluginHost()
    h.load(use_entry_points=False)
    return h


def test_defaults_and_entry_points_load_and_pass_check_pending() -> None:
    h = PluginHost()
    h.load()
    names = set(h.records)
    assert {d.rsplit(".", 1)[1] for d in DEFAULT_PLUGINS} <= names
    assert {"opd_link", "ice_exchange"} <= names  # installed packages, via entry points
    assert h.records["opd_link"].source == "entry point"
    assert all(r.state == "enabled" for r in h.records.values())


def test_plugin_that_fails_to_import_is_shown_failed_and_app_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    dist = tmp_path / "caseforum_broken-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: caseforum-broken\n"
                                   "Version: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[caseforum]\nbroken = caseforum_broken_mod\n")
    (tmp_path / "caseforum_broken_mod.py").write_text("raise RuntimeError('missing licence')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = create_app(settings)
    with TestClient(app) as client:
        login(client, "admin")
        page = client.get("/admin/plugins")
    assert page.status_code == 200
    row = page.text.split('id="plugin-broken"')[1].split("</tr>")[0]
    assert "failed" in row
    assert "missing licence" in row
    assert "1.2.3" in row


def test_invalid_plugin_configuration_names_plugin_and_field() -> None:
    class Config(BaseModel):
        endpoint: str
        retries: int = 1

    plugin = SimpleNamespace(Config=Config)
    h = PluginHost({"strict": {"retries": "many"}})
    record = h.add(plugin, name="strict")
    assert record.state == "failed"
    assert "plugins.strict." in record.error
    assert not h.pm.has_plugin("strict")


def test_valid_configuration_is_visible_to_the_plugin() -> None:
    class Config(BaseModel):
        endpoint: str = "http://127.0.0.1:1"

    h = PluginHost({"cfg": {"endpoint": "http://127.0.0.1:9"}})
    h.add(SimpleNamespace(Config=Config), name="cfg")
    assert h.config("cfg") == {"endpoint": "http://127.0.0.1:9"}


def test_a_raising_plugin_is_isolated_and_reported(host: PluginHost) -> None:
    class Broken:
        @hookimpl
        def extra_nav_items(self, user):
            raise KeyError("oops")

    host.add(Broken(), name="broken_nav")
    try:
        labels = [i["label"] for i in host.nav_items(user=None)]
        assert "Home" in labels  # the others still answer
        assert "extra_nav_items" in host.records["broken_nav"].hook_errors
        assert not host.records["broken_nav"].healthy
    finally:
        host.remove("broken_nav")


def test_disable_and_enable_from_the_admin_page_persists(settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        token = login(client, "admin")
        response = client.post("/admin/plugins/navigation/disable",
                               data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303
        assert not app.state.plugins.pm.has_plugin("navigation")
    # a restart keeps it off
    restarted = create_app(settings)
    assert restarted.state.plugins.records["navigation"].state == "disabled"
    with TestClient(restarted) as client:
        token = login(client, "admin")
        page = client.get("/admin/plugins").text
        assert 'href="/admin"' not in page.split("<main")[0]  # menu came from the plugin
        client.post("/admin/plugins/navigation/enable", data={"csrf_token": token})
        assert 'href="/admin"' in client.get("/admin/plugins").text.split("<main")[0]
    with open_session(make_engine(settings)) as session:
        assert session.get(PluginState, "navigation").enabled


def test_only_platform_admins_switch_plugins(as_user) -> None:
    office_admin, token = as_user("jp.admin")
    assert office_admin.get("/admin/plugins").status_code == 200
    response = office_admin.post("/admin/plugins/navigation/disable",
                                 data={"csrf_token": token})
    assert response.status_code == 403


def test_unknown_plugin_is_404(as_user) -> None:
    admin, token = as_user("admin")
    assert admin.post("/admin/plugins/nope/disable", data={"csrf_token": token}
                      ).status_code == 404


# One test per hook ------------------------------------------------------------------


def test_hook_register_dossier_sources(host: PluginHost) -> None:
    source = SimpleNamespace(name="paper", lookup=lambda number, office=None: [],
                             fetch_dossier=lambda ref: None, stream_document=lambda ref: [])
    seen: list[dict] = []

    class P:
        @hookimpl
        def register_dossier_sources(self, config):
            seen.append(config)  # the plugin's own settings
            return [source]

    host.settings["paper_source"] = {"shelf": "B"}
    host.add(P(), name="paper_source")
    try:
        assert source in host.dossier_sources()
        assert seen[-1] == {"shelf": "B"}
        assert [h.name for h in host.source_health()] == ["paper", "hosted"]
    finally:
        host.remove("paper_source")
    assert source not in host.dossier_sources()


def test_hook_register_notification_channels(host: PluginHost) -> None:
    channel = SimpleNamespace(name="pager", label="Pager", deliver=lambda outgoing: None)

    class P:
        @hookimpl
        def register_notification_channels(self):
            return [channel]

    host.add(P(), name="pager")
    try:
        assert channel in host.notification_channels()
    finally:
        host.remove("pager")
    assert [c.name for c in host.notification_channels()] == ["webhook", "email", "inapp"]


def test_hook_register_transfer_routes(host: PluginHost) -> None:
    class P:
        @hookimpl
        def register_transfer_routes(self):
            return [SimpleNamespace(name="courier")]

    host.add(P(), name="courier")
    try:
        assert [r.name for r in host.transfer_routes()] == ["courier"]
    finally:
        host.remove("courier")


def test_hook_register_bots(host: PluginHost) -> None:
    class P:
        @hookimpl
        def register_bots(self):
            return [SimpleNamespace(name="echo", triggers=["/echo"])]

    built_in = [b.name for b in host.bots()]
    assert {"dossier", "citations", "new-content"} <= set(built_in)
    host.add(P(), name="echo_bot")
    try:
        assert [b.name for b in host.bots()] == ["echo", *built_in]
    finally:
        host.remove("echo_bot")
    assert "echo" not in [b.name for b in host.bots()]


def test_hook_register_reference_patterns(host: PluginHost) -> None:
    from caseforum.numbers import ReferencePattern, find_references, parse_application_number

    names = [p.name for p in host.reference_patterns()]
    assert names, "the numbering plugin contributes the standard patterns"
    extra = ReferencePattern("brunei", r"BN\d{8}",
                             lambda text: parse_application_number("SG" + text[2:]))

    class P:
        @hookimpl
        def register_reference_patterns(self):
            return [extra]

    host.add(P(), name="bn_numbers")
    try:
        patterns = host.reference_patterns()
        assert extra in patterns
        found = find_references("see BN12345678 for details", patterns=patterns)
        assert [r.pattern for r in found] == ["brunei"]
    finally:
        host.remove("bn_numbers")


def test_hook_render_reference_first_answer_wins(host: PluginHost) -> None:
    class Quiet:
        @hookimpl
        def render_reference(self, reference, viewer):
            return None

    class Loud:
        @hookimpl
        def render_reference(self, reference, viewer):
            return f"<b>{reference} for {viewer}</b>"

    host.add(Loud(), name="loud")
    host.add(Quiet(), name="quiet")
    try:
        assert host.render_reference(reference="JP1", viewer="v") == "<b>JP1 for v</b>"
    finally:
        host.remove("loud")
        host.remove("quiet")
    assert host.render_reference(reference="JP1", viewer="v") is None


def test_hook_register_routes_mounts_pages_and_a_disabled_plugin_answers_404(
    settings: Settings,
) -> None:
    router = APIRouter()

    @router.get("/hello-plugin")
    def hello() -> dict[str, str]:
        return {"hello": "from a plugin"}

    class P:
        @hookimpl
        def register_routes(self):
            return [router]

    h = PluginHost()
    h.load()
    h.add(P(), name="hello")
    app = create_app(settings, plugins=h)
    with TestClient(app) as client:
        assert client.get("/hello-plugin").json() == {"hello": "from a plugin"}
        h.set_enabled("hello", False)
        assert client.get("/hello-plugin").status_code == 404
        h.set_enabled("hello", True)
        assert client.get("/hello-plugin").status_code == 200


def test_hook_extra_nav_items_gets_the_user(host: PluginHost, as_user) -> None:
    seen = []

    class P:
        @hookimpl
        def extra_nav_items(self, user):
            seen.append(user)
            return [{"label": "Statistics", "href": "/stats"}] if user and user.role else []

    host.add(P(), name="stats_nav")
    try:
        items = host.nav_items(user=SimpleNamespace(role="examiner", office_code="JP"))
        assert {"label": "Statistics", "href": "/stats"} in items
        labels = [i["label"] for i in host.nav_items(user=None)]
        assert labels == ["Home", "Dossiers", "Search"]  # anonymous: no statistics, no admin
    finally:
        host.remove("stats_nav")


def test_hook_home_panels_adds_a_panel_for_the_viewers_it_is_for(settings: Settings,
                                                                   tmp_path: Path) -> None:
    """A plugin's panel on the home page, rendered from its own template, for JP only;
    a plugin whose panel raises leaves the page whole (and its error on record)."""
    import types

    folder = tmp_path / "desk_notes"
    (folder / "templates" / "desk").mkdir(parents=True)
    (folder / "templates" / "desk" / "_panel.html").write_text(
        "<p>{{ panel.count }} parcels at the {{ office.code }} desk</p>")
    module = types.ModuleType("desk_notes")
    module.__file__ = str(folder / "plugin.py")

    @hookimpl
    def home_panels(session, viewer):
        if viewer.office_code != "JP":
            return []
        return [{"name": "desk", "title": "At the desk", "template": "desk/_panel.html",
                 "context": {"count": 3}}]

    class Broken:
        @hookimpl
        def home_panels(self, viewer):
            raise RuntimeError("the desk is closed")

    module.home_panels = home_panels  # type: ignore[attr-defined]
    host = PluginHost()
    host.load()
    host.add(module, name="desk_notes")
    host.add(Broken(), name="broken_desk")
    with TestClient(create_app(settings, plugins=host)) as client:
        login(client, "jp.examiner")
        jp = client.get("/").text
        login(client, "kr.examiner")
        kr = client.get("/").text
    assert 'data-home-panel="desk"' in jp and "<h2>At the desk</h2>" in jp
    assert "3 parcels at the JP desk" in jp
    assert "At the desk" not in kr and "Unread threads" in kr
    assert host.records["broken_desk"].hook_errors["home_panels"] == \
        "RuntimeError: the desk is closed"


def test_hook_on_event_receives_each_event_once_in_order(settings: Settings, engine) -> None:
    got = []

    class P:
        @hookimpl
        def on_event(self, event):
            got.append((event.id, event.kind))

    h = PluginHost()
    h.load()
    h.add(P(), name="listener")
    from caseforum.events import PluginEventsConsumer

    consumer = PluginEventsConsumer(lambda event: h.on_event(event=event))
    process_pending(consumer, engine)  # catch up with the demo data's events
    got.clear()
    with open_session(engine) as session:
        emit(session, kind="test.one")
        emit(session, kind="test.two")
        session.commit()
    assert process_pending(consumer, engine) == 2
    assert [k for _, k in got] == ["test.one", "test.two"]
    assert process_pending(consumer, engine) == 0
    assert len(got) == 2


def _lifecycle_host(calls: list) -> PluginHost:
    class P:
        @hookimpl
        def startup(self, app):
            calls.append(("startup", app.title))

        @hookimpl
        def shutdown(self, app):
            calls.append(("shutdown", app.title))

    h = PluginHost()
    h.load()
    h.add(P(), name="lifecycle")
    return h


def test_hook_startup(settings: Settings) -> None:
    calls: list = []
    with TestClient(create_app(settings, plugins=_lifecycle_host(calls))):
        assert calls == [("startup", "CaseForum API")]


def test_hook_shutdown(settings: Settings) -> None:
    calls: list = []
    with TestClient(create_app(settings, plugins=_lifecycle_host(calls))):
        assert ("shutdown", "CaseForum API") not in calls
    assert calls[-1] == ("shutdown", "CaseForum API")


def test_hook_register_migrations_creates_the_plugin_tables(tmp_path: Path) -> None:
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "p0001_widget.py").write_text(textwrap.dedent('''
        import sqlalchemy as sa
        from alembic import op

        revision = "p0001_widget"
        down_revision = None
        branch_labels = ("widgets",)
        depends_on = "0001_core"


        def upgrade():
            op.create_table("widget", sa.Column("id", sa.Integer, primary_key=True))


        def downgrade():
            op.drop_table("widget")
    '''))

    class P:
        @hookimpl
        def register_migrations(self):
            return [folder]

    h = PluginHost()
    h.load()
    h.add(P(), name="widgets")
    engine = make_engine(Settings(data_dir=tmp_path, secret_key="w" * 32))
    init_database(engine, h)
    init_database(engine, h)  # twice is fine
    assert "widget" in inspect(engine).get_table_names()


MODELS_PROBE = """
import sys
from sqlmodel import SQLModel
from caseforum.plugin_host import PluginHost
host = PluginHost()
host.load()
assert "caseforum_ice_exchange.models" not in sys.modules, "loaded with the plugin"
assert "ice_parcel" not in SQLModel.metadata.tables
host.models()
assert "ice_parcel" in SQLModel.metadata.tables
"""


def test_hook_register_models_brings_the_tables_the_plugin_left_out(tmp_path: Path) -> None:
    """The ICE plugin's six tables cost every start of the server some 25 ms; it loads
    without them and hands them over when the whole schema is wanted."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MODELS_PROBE], capture_output=True,
                          text=True, timeout=60, env={"CASEFORUM_DATA_DIR": str(tmp_path),
                                                      "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_hook_register_document_types(host: PluginHost) -> None:
    from caseforum.doccodes import DocType

    codes = {t.code for t in host.document_types()}
    assert {"ISR", "CTNF", "NOA"} <= codes

    class P:
        @hookimpl
        def register_document_types(self):
            return [DocType("DECL", "Declaration of interest", "other")]

    host.add(P(), name="decl")
    try:
        assert "DECL" in {t.code for t in host.document_types()}
    finally:
        host.remove("decl")


def test_plugin_state_rows_are_the_only_persisted_state(settings, db) -> None:
    assert db.exec(select(PluginState)).all() == []


def test_hook_register_commands_adds_a_cli_command(host: PluginHost) -> None:
    import click
    from click.testing import CliRunner

    group = click.Group("caseforum")

    class P:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("name")
            def greet(name: str) -> None:
                click.echo(f"hello {name}")

    host.add(P(), name="greeter")
    try:
        host.commands(cli=group)
    finally:
        host.remove("greeter")
    result = CliRunner().invoke(group, ["greet", "JP"])
    assert result.output == "hello JP\n"


def test_plugin_with_a_misspelled_hook_is_failed_not_fatal() -> None:
    class Typo:
        @hookimpl
        def register_botz(self):
            return []

    h = PluginHost()
    h.add(Typo(), name="typo")
    h.load(use_entry_points=False)
    assert h.records["typo"].state == "failed"
    assert "register_botz" in h.records["typo"].error
    assert h.records["navigation"].state == "enabled"


def test_plugin_with_a_wrong_argument_is_failed_not_fatal() -> None:
    class Wrong:
        @hookimpl
        def extra_nav_items(self, user, colour):
            return []

    h = PluginHost()
    record = h.add(Wrong(), name="wrong")
    assert record.state == "failed"
    assert "colour" in record.error


def test_secret_settings_are_masked_on_the_admin_page(settings) -> None:
    h = PluginHost({"ice_exchange": {"key_encryption_secret": "x" * 20}})
    h.load()
    app = create_app(settings, plugins=h)
    with TestClient(app) as client:
        login(client, "admin")
        page = client.get("/admin/plugins").text
    assert "x" * 20 not in page
    assert "key_encryption_secret = ••••••" in page


def test_a_second_dossier_source_answers_what_the_hosted_one_does_not(settings) -> None:
    """The number box reads this database first, then asks the other sources in plugin
    order; what a source returns is stored and opened like any dossier."""
    from datetime import date

    from caseforum.sources import NumberMatch, SourceApplication, SourceDossier

    class Remote:
        name = "remote"
        asked: list[str] = []

        def lookup(self, number, *, office=None):
            self.asked.append(number)
            if "99/999,999" not in number:
                return []
            return [NumberMatch("US", "99999999", "99/999,999", "application", "us-99")]

        def fetch_dossier(self, ref):
            member = SourceApplication("US", "99999999", "99/999,999", date(2020, 1, 2),
                                       title="Remote widget", documents=())
            return SourceDossier(ref, "US", "99999999", (member,))

        def stream_document(self, ref):
            return []

    h = PluginHost()
    h.load()

    class P:
        @hookimpl
        def register_dossier_sources(self):
            return [Remote()]

    h.add(P(), name="remote_source")
    assert [s.name for s in h.dossier_sources()][:2] == ["remote", "hosted"]
    app = create_app(settings, plugins=h)
    with TestClient(app) as client:
        login(client, "kr.examiner")
        found = client.get("/dossiers", params={"q": "US 99/999,999"}, follow_redirects=False)
        assert found.status_code == 303
        assert found.headers["location"] == "/dossiers/US/99999999"
        page = client.get(found.headers["location"])
        assert page.status_code == 200 and "Remote widget" in page.text
        assert "From remote, last refreshed" in page.text
        again = client.get("/dossiers", params={"q": "US 99/999,999"},
                           follow_redirects=False)
    assert again.status_code == 303
    assert Remote.asked == ["US 99/999,999"]  # the second look-up was answered from here
