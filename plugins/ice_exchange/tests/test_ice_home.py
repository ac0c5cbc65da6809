"""The home page's "Waiting for my office": what the viewer's office has to answer,
only for offices that take part in ICE, at a fixed number of queries."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from caseforum_ice_exchange.models import IceExchange

from caseforum.db import open_session
from tests.sql_helpers import counted

from .test_ice_hosted import REPORT, open_request, step

PANEL = 'data-home-panel="ice-waiting"'


def _panel(page: str) -> str:
    """The panel's HTML (up to the end of its section); '' when the page has none."""
    if PANEL not in page:
        return ""
    start = page.index(PANEL)
    return page[start:page.index("</section>", start)]


def test_donor_and_recipient_examiners_see_what_waits_for_their_office(
        hosted_settings: Any, as_user: Any) -> None:
    from caseforum.app import create_app

    app = create_app(hosted_settings)
    sg, sg_csrf = as_user("sg.examiner", on=app)  # SG: recipient
    jp, jp_csrf = as_user("jp.examiner", on=app)  # JP: donor (and recipient)
    exchange_id = open_request(sg, sg_csrf)

    jp_panel = _panel(jp.get("/").text)
    assert f'href="/ice/{exchange_id}"' in jp_panel
    assert "requested by" in jp_panel and "answer the request" in jp_panel
    assert "due" in jp_panel and "2099-03-01" in jp_panel
    sg_panel = _panel(sg.get("/").text)  # the request waits for JP, not for SG
    assert sg_panel and exchange_id not in sg_panel and "Nothing waits for your office" in sg_panel

    for kind in ("accept", "start"):
        assert step(jp, jp_csrf, exchange_id, kind).status_code == 303
    assert "deliver the report" in _panel(jp.get("/").text)
    assert step(jp, jp_csrf, exchange_id, "report", "Attached.",
                files=[("file", ("report.txt", REPORT, "text/plain"))]).status_code == 303

    sg_panel = _panel(sg.get("/").text)
    assert f'href="/ice/{exchange_id}"' in sg_panel and "acknowledge the report" in sg_panel
    assert exchange_id not in _panel(jp.get("/").text)
    assert step(sg, sg_csrf, exchange_id, "acknowledge").status_code == 303
    assert step(sg, sg_csrf, exchange_id, "close").status_code == 303
    assert exchange_id not in _panel(sg.get("/").text)


def test_an_office_without_an_ice_role_has_no_panel(hosted_settings: Any,
                                                    as_user: Any) -> None:
    from caseforum.app import create_app

    app = create_app(hosted_settings)  # SG, JP and AU take part; KR does not
    kr, _ = as_user("kr.examiner", on=app)
    page = kr.get("/")
    assert page.status_code == 200 and "Unread threads" in page.text
    assert PANEL not in page.text and "Waiting for my office" not in page.text


def _waiting_exchanges(engine: Any, count: int) -> None:
    """``count`` requests from SG to JP, straight into the table (the panel reads
    rows; how they came is the workflow tests' business)."""
    with open_session(engine) as session:
        for k in range(count):
            session.add(IceExchange(
                id=str(uuid.uuid4()), recipient_office="SG", donor_office="JP",
                application_office="SG", application_number=f"10201{k:07d}",
                application_display=f"10201{k:07d}", kind="search",
                due_date=date(2099, 1, 1 + k), route="hosted", status="requested"))
        session.commit()


@pytest.mark.usefixtures("steady_identity_cache")
def test_the_panel_costs_the_same_queries_for_two_five_or_twenty_exchanges(
        hosted_settings: Any, as_user: Any) -> None:
    from caseforum.app import create_app

    app = create_app(hosted_settings.model_copy(update={"run_consumers": False}))
    jp, _ = as_user("jp.examiner", on=app)
    sizes = []
    for more in (2, 3, 15):
        _waiting_exchanges(app.state.engine, more)
        jp.get("/")  # warm the caches (offices, identity)
        with counted(app.state.engine) as statements:
            page = jp.get("/").text
        sizes.append(len(statements))
    panel = _panel(page)
    assert panel.count('href="/ice/') == 6 and "All 20 waiting for JP" in panel
    assert panel.index("2099-01-01") < panel.index("2099-01-02")  # soonest due first
    # no query per row; past the six shown, one more for their total
    assert sizes[0] == sizes[1] == sizes[2] - 1, sizes
