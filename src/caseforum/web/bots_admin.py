"""/admin/bots: which bots are registered, what they did lately, and what went wrong.

Platform administrators only: the runs list threads and errors across every
office and category, which an office administrator may not see.
"""

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import select

from caseforum.authz import require
from caseforum.bots.base import load_bots
from caseforum.bots.runner import BotRunner
from caseforum.db import SessionDep
from caseforum.models import BotRun, ConsumerCursor, User, utcnow
from caseforum.web.deps import CurrentViewer
from caseforum.web.templating import render

router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=False)
STATUSES = ("pending", "answered", "skipped", "limited", "error", "timeout")


def _runner(request: Request) -> BotRunner | None:
    consumers = getattr(request.app.state, "consumers", None)
    for consumer in getattr(consumers, "consumers", []):
        if isinstance(consumer, BotRunner):
            return consumer
    return None


@router.get("/bots")
def bots_page(request: Request, session: SessionDep, viewer: CurrentViewer,
              bot: str = "", status: str = "") -> Response:
    require(viewer, "plugins.manage")
    loaded, problems = load_bots(request.app.state.plugins.bots())
    runner = _runner(request)
    since = utcnow() - timedelta(days=1)
    counts: dict[str, dict[str, int]] = {}
    for name, state, n in session.exec(
            select(BotRun.bot, BotRun.status, func.count()).where(BotRun.at >= since)
            .group_by(BotRun.bot, BotRun.status)):
        counts.setdefault(name, {})[state] = n
    users = {u.username: u for u in session.exec(
        select(User).where(User.username.in_([b.name for b in loaded])))}  # type: ignore[attr-defined]
    query = select(BotRun).order_by(BotRun.id.desc()).limit(100)  # type: ignore[union-attr]
    if bot:
        query = query.where(BotRun.bot == bot)
    if status in STATUSES:
        query = query.where(BotRun.status == status)
    errors = session.exec(select(BotRun).where(
        BotRun.status.in_(("error", "timeout")))  # type: ignore[attr-defined]
        .order_by(BotRun.id.desc()).limit(20)).all()  # type: ignore[union-attr]
    context: dict[str, Any] = {
        "bots": [{"bot": b, "user": users.get(b.name), "counts": counts.get(b.name, {}),
                  "stuck": runner.stuck(b.name) if runner else 0} for b in loaded],
        "problems": problems,
        "runner": runner,
        "cursor": session.get(ConsumerCursor, "bot-runner"),
        "runs": session.exec(query).all(),
        "errors": errors,
        "statuses": STATUSES,
        "filter_bot": bot,
        "filter_status": status,
    }
    return render(request, "admin/bots.html", context)
