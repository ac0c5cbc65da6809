"""The main pages of the app, each with a demo user who may see it: the tour the mobile
and accessibility browser tests walk (tests/test_browser_mobile.py, test_browser_a11y.py).

The instance is the demo with ICE switched on as ``caseforum ice demo`` does (JP both,
SG recipient, AU donor, keys for all three) and one exchange SG opened with JP, so the
exchange pages have something to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import Application, Category, Document, Office, Thread
from caseforum.models.office import IceRole
from tests.conftest import LiveServer, login

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@dataclass(frozen=True)
class Stop:
    """One page of the tour: who looks at it, where, and what it is called in reports."""

    name: str
    user: str | None  # None: a visitor who has not logged in
    path: str
    ready: str = "body"  # what shows once the page has drawn itself (scripts included)


@dataclass
class Tour:
    server: LiveServer
    stops: list[Stop]

    @property
    def url(self) -> str:
        return self.server.url


def _ice_demo(settings: Settings) -> None:
    """What ``caseforum ice demo`` does (its roles; keys made without the command)."""
    from caseforum_ice_exchange import keys
    from caseforum_ice_exchange.cli import DEMO_ROLES

    engine = make_engine(settings)
    with open_session(engine) as session:
        for code, role in DEMO_ROLES:
            office = session.get(Office, code)
            assert office is not None
            office.ice_role = IceRole(role)
            session.add(office)
            if not keys.is_local(session, code):
                keys.generate_keys(session, office_code=code, secret=settings.secret_key or "",
                                   actor="test")
        session.commit()
    engine.dispose()


def _open_exchange(app: Any) -> str:
    with TestClient(app) as client:
        csrf = login(client, "sg.examiner")
        response = client.post("/api/v1/ice/exchanges", headers={"X-CSRF-Token": csrf}, json={
            "donor_office": "JP", "application": "JP 2019-041872", "kind": "search",
            "message": "Please search claims 1-3 of this application."})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def _stops(engine: Any, exchange_id: str) -> list[Stop]:
    with open_session(engine) as session:
        category = session.exec(select(Category).order_by(col(Category.id))).first()
        thread = session.exec(select(Thread).order_by(col(Thread.id))).first()
        jp = session.exec(select(Application).where(
            Application.office_code == "JP", Application.number == "2019041872")).one()
        docs = list(session.exec(select(Document).where(
            Document.application_id == jp.id).order_by(col(Document.id))))
    assert category and thread and len(docs) >= 2
    dossier = "/dossiers/JP/2019041872"
    return [
        Stop("login", None, "/login"),
        Stop("visitor-home", None, "/"),
        Stop("home", "jp.examiner", "/"),
        Stop("dossiers", "jp.examiner", "/dossiers"),
        Stop("forum", "jp.examiner", "/forum"),
        Stop("category", "jp.examiner", f"/forum/c/{category.id}"),
        Stop("thread", "jp.examiner", f"/threads/{thread.id}"),
        Stop("chat", "jp.examiner", f"/threads/{thread.id}/chat"),
        Stop("unread", "jp.examiner", "/forum/unread"),
        Stop("new-message", "jp.examiner", "/messages/new"),
        Stop("notifications", "kr.examiner", "/notifications"),
        Stop("dossier", "jp.examiner", dossier),
        Stop("timeline", "jp.examiner", f"{dossier}/timeline"),
        Stop("document", "jp.examiner", f"/documents/{docs[0].id}"),
        Stop("compare", "jp.examiner", f"/compare?doc={docs[0].id}&doc={docs[1].id}"),
        Stop("new-dossier", "jp.examiner", "/dossiers-new"),
        Stop("ice-list", "jp.examiner", "/ice"),
        Stop("ice-new", "sg.examiner", "/ice/new"),
        Stop("ice-exchange", "jp.examiner", f"/ice/{exchange_id}"),
        Stop("stats", "jp.admin", "/stats"),
        Stop("admin", "admin", "/admin"),
        Stop("admin-plugins", "admin", "/admin/plugins"),
        Stop("admin-offices", "admin", "/admin/offices"),
        Stop("admin-users", "admin", "/admin/users"),
        Stop("admin-audit", "admin", "/admin/audit"),
        Stop("admin-bots", "admin", "/admin/bots"),
        Stop("flags", "admin", "/forum/flags"),
        Stop("office-admin-users", "jp.admin", "/admin/users"),
        Stop("api-docs", "jp.examiner", "/api/v1/docs", ready=".opblock-summary"),
    ]


@pytest.fixture(name="tour")
def tour_fixture(data_dir: Path) -> Iterator[Tour]:
    """A live demo instance with ICE switched on and one exchange, and its pages."""
    settings = load_settings(data_dir=data_dir, secret_key="s" * 32)
    _ice_demo(settings)
    app = create_app(settings)
    exchange_id = _open_exchange(app)
    server = LiveServer(app).start()
    try:
        yield Tour(server, _stops(app.state.engine, exchange_id))
    finally:
        server.stop()


def contexts_by_user(browser: Any, tour: Tour, viewport: dict[str, int]
                     ) -> Iterator[tuple[Stop, Any]]:
    """Each stop with a page of a browser context logged in as the stop's user (one
    context per user, made when first needed; all closed at the end)."""
    from tests.browser import log_in, open_tab

    pages: dict[str | None, Any] = {}
    try:
        for stop in tour.stops:
            if stop.user not in pages:
                tab = open_tab(browser, viewport)
                if stop.user is not None:
                    log_in(tab, tour.server, stop.user)
                pages[stop.user] = tab
            yield stop, pages[stop.user]
    finally:
        for tab in pages.values():
            tab.context.close()


def visit(page: Any, tour: Tour, stop: Stop) -> None:
    response = page.goto(f"{tour.url}{stop.path}")
    assert response is not None and response.status < 400, \
        f"{stop.name}: {stop.path} answered {response.status if response else 'nothing'}"
    page.wait_for_load_state("networkidle")
    page.locator(stop.ready).first.wait_for()
