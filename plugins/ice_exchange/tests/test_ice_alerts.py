"""ICE alerts: a step of an exchange tells the other office's administrators (bell and
mail) and its assigned examiner; nobody of an uninvolved office hears of it."""

from __future__ import annotations

from typing import Any

from caseforum.app import create_app
from caseforum.config import MailSettings
from caseforum.db import open_session
from caseforum.models import Notification
from caseforum.subscriptions import set_channels
from tests.notify_helpers import notes_of, send_now, smtp_server, user

from .conftest import wait_for
from .test_ice_hosted import open_request


def test_sg_opening_a_request_tells_jps_admin_in_the_bell_and_by_mail(
        hosted_settings: Any, as_user: Any) -> None:
    controller, inbox, port = smtp_server()
    try:
        app = create_app(hosted_settings.model_copy(update={
            "mail": MailSettings(host="127.0.0.1", port=port)}))
        with open_session(app.state.engine) as session:
            admin = user(session, "jp.admin")
            admin.email = "admin@jpo.test"
            session.add(admin)
            set_channels(session, admin.id or 0, "ice", ["inapp", "email"])
            session.commit()
        sg, sg_csrf = as_user("sg.examiner", on=app)
        exchange_id = open_request(sg, sg_csrf)
        engine = app.state.engine

        def alerted(username: str) -> list[Notification]:
            return [n for n in notes_of(engine, username) if n.link == f"/ice/{exchange_id}"]

        [note] = wait_for(lambda: alerted("jp.admin"), what="jp.admin's alert")
        assert note.text.endswith("requested by SG") and note.read_at is None
        wait_for(lambda: send_now(app, "email") or inbox.to("admin@jpo.test"),
                 what="the mail")
        [mail] = inbox.to("admin@jpo.test")
        assert "requested by SG" in mail["Subject"]
        assert alerted("sg.examiner") == [] and alerted("cn.examiner") == []
        # opening the exchange (from the ICE list, not the bell) reads the alert
        jp, _ = as_user("jp.admin", on=app)
        assert jp.get(f"/ice/{exchange_id}").status_code == 200
        assert [n.read_at is not None for n in alerted("jp.admin")] == [True]

    finally:
        controller.stop()
