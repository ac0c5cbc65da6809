"""Operations endpoints: ``/metrics`` for Prometheus and ``/readyz`` for load balancers.

Both are served from start-up on (not deferred): a balancer asks ``/readyz`` before
the first user does.  ``/healthz`` (liveness) stays in ``pages.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from caseforum import readiness
from caseforum.authz import require
from caseforum.web.deps import CurrentViewer
from caseforum.web.metrics import AppMetrics
from caseforum.web.proxy import address_in
from caseforum.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request, viewer: CurrentViewer) -> Response:
    """Prometheus text format.  Readable from the addresses in ``metrics_allow`` (the
    scraper, which has no account), otherwise by a platform admin's session or token
    with the ``admin`` scope; others get 401 or 403 like any admin page."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # at first use

    app_metrics: AppMetrics = request.app.state.metrics
    client = request.client.host if request.client else None
    if not address_in(client, app_metrics.allow):
        require(viewer, "metrics.view")
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _checks(state: Any) -> dict[str, str]:
    return {
        "database": readiness.check_database(state.engine, state.settings.sqlalchemy_url),
        "broker": readiness.check_broker(state.settings.redis_url),
        "storage": readiness.check_storage(state.store),
    }


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """200 when the database, the broker (Redis, when configured) and the file store
    can be reached; 503 naming the ones that cannot."""
    checks = _checks(request.app.state)
    failed = [name for name, result in checks.items() if result != "ok"]
    return JSONResponse({"status": "unavailable" if failed else "ok", "failed": failed,
                         "checks": checks}, status_code=503 if failed else 200)


@router.get("/admin/availability")
def availability(request: Request, viewer: CurrentViewer) -> Response:
    """The readiness checks and this host's figures for a platform admin, from the same
    sources as ``/readyz`` and ``/metrics`` (requests summed per route)."""
    require(viewer, "metrics.view")
    app_metrics: AppMetrics = request.app.state.metrics
    routes: dict[tuple[str, str], list[float]] = {}  # (method, route): [count, seconds]
    gauges: list[tuple[str, str, str, float]] = []
    for family in app_metrics.registry.collect():
        for sample in family.samples:
            key = (sample.labels.get("method", ""), sample.labels.get("route", ""))
            if sample.name == "caseforum_http_request_duration_seconds_count":
                routes.setdefault(key, [0.0, 0.0])[0] += sample.value
            elif sample.name == "caseforum_http_request_duration_seconds_sum":
                routes.setdefault(key, [0.0, 0.0])[1] += sample.value
            elif family.type == "gauge":
                labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                gauges.append((sample.name, labels, family.documentation, sample.value))
    busiest = sorted(((count, method, route, seconds / count * 1000 if count else 0.0)
                      for (method, route), (count, seconds) in routes.items()), reverse=True)
    return render(request, "admin/availability.html", {
        "checks": _checks(request.app.state), "gauges": gauges, "routes": busiest[:30]})
