"""Operations endpoints: ``/metrics`` for Prometheus and ``/readyz`` for load balancers.

Both are served from start-up on (not deferred): a balancer asks ``/readyz`` before
the first user does.  ``/healthz`` (liveness) stays in ``pages.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caseforum import readiness
from caseforum.authz import require
from caseforum.web.deps import CurrentViewer
from caseforum.web.metrics import AppMetrics
from caseforum.web.proxy import address_in

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request, viewer: CurrentViewer) -> Response:
    """Prometheus text format.  Readable from the addresses in ``metrics_allow`` (the
    scraper, which has no account), otherwise by a platform admin's session or token
    with the ``admin`` scope; others get 401 or 403 like any admin page."""
    app_metrics: AppMetrics = request.app.state.metrics
    client = request.client.host if request.client else None
    if not address_in(client, app_metrics.allow):
        require(viewer, "metrics.view")
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 when the database, the broker (Redis, when configured) and the file store
    can be reached; 503 naming the ones that cannot."""
    state = request.app.state
    checks = {
        "database": readiness.check_database(state.engine, state.settings.sqlalchemy_url),
        "broker": readiness.check_broker(state.settings.redis_url),
        "storage": readiness.check_storage(state.store.root),
    }
    failed = [name for name, result in checks.items() if result != "ok"]
    return JSONResponse({"status": "unavailable" if failed else "ok", "failed": failed,
                         "checks": checks}, status_code=503 if failed else 200)
