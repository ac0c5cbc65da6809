"""Usage statistics: documents accessed per month, by office, with CSV export."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from caseforum import errors, i18n
from caseforum.authz import can, require
from caseforum.db import SessionDep
from caseforum.dossiers.usage import ACTIONS, bar_chart_svg, to_csv, usage
from caseforum.i18n import N_
from caseforum.web.deps import CurrentViewer
from caseforum.web.locale import request_locale
from caseforum.web.templating import render

router = APIRouter(tags=["statistics"], include_in_schema=False)


def _scope(viewer: CurrentViewer, office: str) -> str | None:
    """Who may see every office's figures chooses (empty: everything); office
    admins get their office."""
    if can(viewer, "stats.view_all"):
        return office.upper() or None
    return viewer.office_code


def _params(viewer: CurrentViewer, office: str, action: str, months: int) -> tuple:
    require(viewer, "stats.view", None)
    scope = _scope(viewer, office)
    if not can(viewer, "stats.view", scope):
        raise errors.Forbidden("you may see your own office's figures")
    if action and action not in ACTIONS:
        raise errors.InvalidInput(f"action: use one of {', '.join(ACTIONS)}")
    if not 1 <= months <= 60:
        raise errors.InvalidInput("months: between 1 and 60")
    return scope, action or None, months


@router.get("/stats")
def stats_page(request: Request, session: SessionDep, viewer: CurrentViewer,
               office: str = "", action: str = "", months: int = 12) -> Response:
    scope, act, months = _params(viewer, office, action, months)
    accessing, providing = usage(session, office=scope, months=months, action=act)
    locale = request_locale(request)
    by_accessing = i18n.translate(N_("Documents accessed per month, by accessing office"), locale)
    by_providing = i18n.translate(N_("Documents accessed per month, by providing office"), locale)
    return render(request, "stats.html", {
        "scope": scope, "action": act or "", "months": months, "actions": ACTIONS,
        "accessing": accessing, "providing": providing,
        "accessing_svg": Markup(bar_chart_svg(accessing, title=by_accessing)),
        "providing_svg": Markup(bar_chart_svg(providing, title=by_providing)),
        "can_choose_office": can(viewer, "stats.view_all"),
    })


@router.get("/stats.csv")
def stats_csv(session: SessionDep, viewer: CurrentViewer, office: str = "", action: str = "",
              months: int = 12) -> Response:
    scope, act, months = _params(viewer, office, action, months)
    accessing, providing = usage(session, office=scope, months=months, action=act)
    name = f"caseforum-usage-{scope or 'all'}.csv"
    return Response(to_csv(accessing, providing), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
