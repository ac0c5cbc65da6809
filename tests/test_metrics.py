"""/metrics in Prometheus format for platform admins and the scraper's address;
/readyz names what this host cannot reach."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.db import open_session
from caseforum.models import ConsumerCursor, Delivery, Event, User

SCRAPER = ("10.20.0.5", 9090)


def _app(settings: Settings, **changes: Any) -> Any:
    return create_app(load_settings(data_dir=settings.data_dir, secret_key="s" * 32,
                                    **changes))


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(family: Any, name: str | None = None) -> list[Any]:
    return [s for s in family.samples if name is None or s.name == name]


def test_metrics_from_an_allowed_address_parse_and_count_by_route_pattern(
        settings: Settings) -> None:
    app = _app(settings, metrics_allow=["10.20.0.0/24"])
    with TestClient(app, client=SCRAPER) as client:
        for thread_id in (1, 2, 3, 999):
            client.get(f"/threads/{thread_id}")
        client.get("/no/such/page/at/all")
        with open_session(app.state.engine) as session:  # a failed e-mail, a lagging consumer
            newest = session.exec(select(Event.id).order_by(Event.id.desc())).first() or 0
            session.add(Delivery(notification_id=1, user_id=1, channel="email", state="failed"))
            session.add(ConsumerCursor(name="slow-reader", last_event_id=max(newest - 7, 0)))
            session.commit()
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)

    requests = _samples(families["caseforum_http_requests"], "caseforum_http_requests_total")
    routes = {s.labels["route"] for s in requests}
    assert "/threads/{thread_id}" in routes  # the pattern, not /threads/1, /threads/2 ...
    assert not any(r.startswith("/threads/") and r != "/threads/{thread_id}" for r in routes)
    assert "<none>" in routes  # unknown paths share one label
    per_thread = sum(s.value for s in requests if s.labels["route"] == "/threads/{thread_id}")
    assert per_thread == 4
    latency = families["caseforum_http_request_duration_seconds"]
    counts = [s for s in _samples(latency, "caseforum_http_request_duration_seconds_count")
              if s.labels["route"] == "/threads/{thread_id}"]
    assert sum(s.value for s in counts) == 4

    assert _samples(families["caseforum_websocket_connections"])[0].value == 0
    assert "caseforum_fanout_queue_depth" in families
    lag = {s.labels["consumer"]: s.value for s in _samples(
        families["caseforum_consumer_lag_events"])}
    assert lag["slow-reader"] == min(7, newest)
    failures = {s.labels["channel"]: s.value for s in _samples(
        families["caseforum_delivery_failures"])}
    assert failures == {"email": 1}
    sources = _samples(families["caseforum_source_up"])
    assert sources and all(s.value in (0, 1) for s in sources)
    assert {"source", "plugin", "state"} <= set(sources[0].labels)
    assert _samples(families["caseforum_ice_queue_depth"])[0].value >= 0


def test_metrics_need_a_platform_admin_or_an_allowed_address(
        settings: Settings, as_user: Any, db: Any) -> None:
    app = _app(settings, metrics_allow=["10.20.0.0/24"])
    with TestClient(app, client=("10.30.0.1", 1)) as outsider:
        assert outsider.get("/metrics", headers={"Accept": "application/json"}
                            ).status_code == 401
    office_admin, _ = as_user("us.admin", on=app)
    assert office_admin.get("/metrics").status_code == 403
    platform_admin, _ = as_user("admin", on=app)
    assert "caseforum_http_requests_total" in platform_admin.get("/metrics").text

    admin = db.exec(select(User).where(User.username == "admin")).one()
    _, with_admin = accounts.create_token(db, user=admin, scopes=["admin"])
    _, without_admin = accounts.create_token(db, user=admin, scopes=["dossiers:read", "forum"])
    db.commit()
    with TestClient(app) as api:
        ok = api.get("/metrics", headers={"Authorization": f"Bearer {with_admin}"})
        assert ok.status_code == 200
        assert "caseforum_consumer_lag_events" in ok.text
        refused = api.get("/metrics", headers={"Authorization": f"Bearer {without_admin}",
                                                "Accept": "application/json"})
        assert refused.status_code == 403


def test_the_allowed_address_is_the_forwarded_one_behind_a_trusted_proxy(
        settings: Settings) -> None:
    app = _app(settings, metrics_allow=["10.20.0.5"], trusted_proxies=["10.1.0.0/16"])
    with TestClient(app, client=("10.1.2.3", 1)) as via_proxy:
        assert via_proxy.get("/metrics", headers={"X-Forwarded-For": "10.20.0.5"}
                             ).status_code == 200
        assert via_proxy.get("/metrics", headers={"X-Forwarded-For": "10.99.0.1",
                                                  "Accept": "application/json"}
                             ).status_code == 401


def test_readyz_is_ok_when_everything_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failed": [],
                               "checks": {"database": "ok", "broker": "ok", "storage": "ok"}}
    assert client.get("/healthz").status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def test_readyz_fails_when_redis_is_not_reachable(settings: Settings) -> None:
    app = _app(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0", run_consumers=False)
    client = TestClient(app)  # not started: the broker would not connect either
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert "Connection" in body["checks"]["broker"]
    assert body["checks"]["database"] == "ok"


@pytest.mark.services
def test_readyz_is_ok_with_a_reachable_redis(settings: Settings, redis_url: str) -> None:
    app = _app(settings, redis_url=redis_url)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["broker"] == "ok"


@pytest.mark.services
def test_readyz_on_postgresql(settings: Settings, postgres_url: str) -> None:
    app = _app(settings, database_url=postgres_url, run_consumers=False)
    response = TestClient(app).get("/readyz")  # the check only: no start-up needed
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
    app.state.engine.dispose()


def test_readyz_fails_when_the_database_file_is_unreadable(settings: Settings) -> None:
    app = _app(settings)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        (settings.data_dir / "caseforum.db").write_bytes(b"not a database" * 512)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["failed"] == ["database"]
        assert "not a database" in response.json()["checks"]["database"]


def test_readyz_fails_when_the_file_store_is_gone(settings: Settings) -> None:
    import shutil

    app = _app(settings)
    with TestClient(app) as client:
        shutil.rmtree(settings.storage_dir)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["failed"] == ["storage"]


def test_the_availability_page_shows_checks_and_figures_to_platform_admins(
        app: Any, as_user: Any) -> None:
    office_admin, _ = as_user("us.admin")
    assert office_admin.get("/admin/availability").status_code == 403
    assert "/admin/availability" not in office_admin.get("/admin").text
    admin, _ = as_user("admin")
    assert "/admin/availability" in admin.get("/admin").text
    admin.get("/forum")
    page = admin.get("/admin/availability")
    assert page.status_code == 200
    assert page.text.count('<span class="chip ok">ok</span>') == 3  # database, broker, storage
    assert "caseforum_consumer_lag_events" in page.text
    assert "GET /forum</th>" in page.text
