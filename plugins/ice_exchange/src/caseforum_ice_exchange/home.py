"""The home page's "Waiting for my office" panel: exchanges whose next move is the
viewer's office (a request to answer, work to deliver, a report to acknowledge or
close).

The home page is the most visited page, so the panel costs two indexed queries
(the first rows and their total), decided in SQL rather than by loading every
exchange of the office and filtering in Python as ``/ice?show=waiting`` does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from caseforum import authcache
from caseforum.authz import Viewer, can
from caseforum.i18n import Msg

from .models import IceExchange
from .states import KINDS, STATUS_LABELS, WAITING_ON

SHOWN = 6
NEXT_MOVE = {
    "requested": Msg("answer the request"),
    "accepted": Msg("start the work"),
    "in_progress": Msg("deliver the report"),
    "report_delivered": Msg("acknowledge the report"),
    "acknowledged": Msg("close the exchange"),
}


def _waiting_for(office_code: str) -> Any:
    """SQL condition: the exchange waits for ``office_code``'s move."""
    on_side = {side: [s for s, w in WAITING_ON.items() if w == side]
               for side in ("donor", "recipient")}
    return or_(
        and_(col(IceExchange.donor_office) == office_code,
             col(IceExchange.status).in_(on_side["donor"])),
        and_(col(IceExchange.recipient_office) == office_code,
             col(IceExchange.status).in_(on_side["recipient"])),
    )


def waiting_panel(session: Session, viewer: Viewer) -> dict[str, Any] | None:
    """The panel for a user of an office that takes part in ICE, else ``None``."""
    code = viewer.office_code
    if not code or not can(viewer, "ice.exchanges.list"):
        return None
    office = authcache.offices(session).get(code)
    role = str(getattr(getattr(office, "ice_role", None), "value", "none"))
    if office is None or role == "none":
        return None
    where = _waiting_for(code)
    rows = session.exec(select(IceExchange).where(where).order_by(
        col(IceExchange.due_date).is_(None), col(IceExchange.due_date),
        col(IceExchange.updated_at).desc()).limit(SHOWN)).all()
    total = len(rows) if len(rows) < SHOWN else session.exec(
        select(func.count()).select_from(IceExchange).where(where)).one()
    items = [{
        "id": e.id,
        "application": f"{e.application_office} {e.application_display}",
        "other_office": e.donor_office if e.recipient_office == code else e.recipient_office,
        "kind_label": KINDS.get(e.kind, e.kind),
        "status_label": STATUS_LABELS.get(e.status, e.status),
        "next_move": NEXT_MOVE.get(e.status, ""),
        "is_request": e.status == "requested",
        "due_date": e.due_date,
        "overdue": e.overdue,
    } for e in rows]
    return {"name": "ice-waiting", "title": Msg("Waiting for my office"),
            "template": "ice/_home_waiting.html",
            "context": {"exchanges": items, "total": total}}
