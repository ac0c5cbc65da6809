"""Webhook endpoints may not make the server call internal addresses (loopback,
link-local, private networks) unless an administrator allows them: refused with a
422 that says why on the settings page and in the API, and checked again before each
send, against the address the request then goes to."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from caseforum import netguard
from caseforum.app import create_app
from caseforum.models import Delivery, WebhookEndpoint
from caseforum.netguard import AddressPolicy, RefusedAddress, check_url
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.notify_helpers import Receiver, notify_now, send_now, start_log_after_history

PUBLIC = "93.184.216.34"


def answers(*addresses: str) -> Any:
    """A DNS look-up that answers ``addresses`` for every name."""
    def lookup(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]
    return lookup


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("https://10.2.3.4/hook", "10.2.3.4 is a private address"),
    ("http://192.168.1.20/hook", "192.168.1.20 is a private address"),
    ("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "is a loopback address"),
    ("ftp://example.org/", "use an http:// or https:// address"),
])
def test_internal_addresses_are_refused_by_default(url: str, words: str) -> None:
    with pytest.raises(RefusedAddress) as refused:
        check_url(url, AddressPolicy(), lookup=answers(PUBLIC))
    assert words in refused.value.message and refused.value.status == 422


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    assert str(check_url("https://hooks.example.org/x", AddressPolicy(),
                         lookup=answers(PUBLIC)).address) == PUBLIC
    with pytest.raises(RefusedAddress, match=r"10\.0\.0\.7 is a private address "
                       r"\(intranet\.example\.org resolves to it\)"):
        check_url("https://intranet.example.org/", AddressPolicy(),
                  lookup=answers(PUBLIC, "10.0.0.7"))


def test_an_administrator_allows_hosts_networks_or_everything() -> None:
    policy = AddressPolicy.of(["hooks.corp.internal", "10.20.0.0/16", "::1"])
    internal = answers("10.99.0.1")
    assert check_url("http://hooks.corp.internal/x", policy, lookup=internal)
    assert check_url("http://10.20.5.5/x", policy) and check_url("http://[::1]:81/x", policy)
    for url in ("http://10.21.0.1/x", "http://127.0.0.1/x", "http://other.corp.internal/x"):
        with pytest.raises(RefusedAddress):
            check_url(url, policy, lookup=internal)
    everything = AddressPolicy.of([], allow_private=True)
    assert check_url("http://other.corp.internal/x", everything, lookup=internal)


@pytest.fixture
def strict_app(settings: Any) -> Any:
    """The default: no internal address allowed."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_the_settings_page_refuses_a_loopback_endpoint_and_says_why(
        strict_app: Any, receiver: Receiver, db: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(strict_app) as client:
        csrf = login(client, "cn.examiner")
        for url in (receiver.url, "http://localhost:8080/hook",
                    "http://169.254.169.254/latest/meta-data"):
            page = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": url})
            assert page.status_code == 422
            assert "webhooks may only reach public addresses" in page.text
            assert "allowed_hosts" in page.text and 'id="webhook-secret"' not in page.text
    assert db.exec(select(WebhookEndpoint)).all() == []


def test_the_api_refuses_internal_endpoints_and_takes_allowed_ones(
        settings: Any, receiver: Receiver, db: Any) -> None:
    from fastapi.testclient import TestClient

    headers = token_for(db, "cn.examiner", "dossiers:read")
    with TestClient(create_app(settings.model_copy(update={"run_consumers": False}))) as api:
        refused = api.post("/api/v1/webhooks", headers=headers, json={"url": receiver.url})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("url: 127.0.0.1 is a loopback address")
    allowing = settings.model_copy(update={
        "run_consumers": False,
        "plugins": {"webhook_channel": {"allowed_hosts": ["127.0.0.1"]}}})
    with TestClient(create_app(allowing)) as api:
        made = api.post("/api/v1/webhooks", headers=headers, json={"url": receiver.url})
        assert made.status_code == 201, made.text
        assert made.json()["url"] == receiver.url and len(made.json()["secret"]) > 30
        [listed] = api.get("/api/v1/webhooks", headers=headers).json()
        assert listed["id"] == made.json()["id"] and listed["secret"] is None
        gone = api.delete(f"/api/v1/webhooks/{listed['id']}", headers=headers)
        assert gone.status_code == 204
        assert api.get("/api/v1/webhooks", headers=headers).json() == []


def _hooked_app(settings: Any, db: Any, receiver: Receiver, url: str,
                allowed: list[str]) -> tuple[Any, Any]:
    """An app allowing ``allowed``, cn.examiner's endpoint ``url`` following family 1,
    and one JP upload waiting as a webhook delivery."""
    from fastapi.testclient import TestClient

    app = create_app(settings.model_copy(update={
        "run_consumers": False, "plugins": {"webhook_channel": {"allowed_hosts": allowed}}}))
    start_log_after_history(app.state.engine)
    client = TestClient(app)
    client.__enter__()
    csrf = login(client, "cn.examiner")
    shown = client.post("/settings/webhooks", data={"csrf_token": csrf, "url": url})
    assert shown.status_code == 200, shown.text
    receiver.secret = shown.text.split('id="webhook-secret">')[1].split("<")[0]
    made = client.post("/api/v1/subscriptions", headers=token_for(db, "cn.examiner",
                                                                  "dossiers:read"),
                       json={"kind": "family", "target": "JP 2019-041872",
                             "channels": ["webhook"]})
    assert made.status_code == 201, made.text
    uploaded = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("Report"), code="SRPT", date="2021-02-03")
    assert uploaded.status_code == 201, uploaded.text
    notify_now(app)
    return app, client


def test_a_name_that_turns_internal_after_saving_is_refused_when_sending(
        settings: Any, db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(netguard, "resolve", answers(PUBLIC))  # public when saved
    app, client = _hooked_app(settings, db, receiver, f"http://hooks.example.org:{port}/hook",
                              allowed=[])
    try:
        monkeypatch.setattr(netguard, "resolve", answers("127.0.0.1"))  # DNS rebinding
        send_now(app, "webhook")
        assert receiver.received == []
        [delivery] = db.exec(select(Delivery)).all()
        assert delivery.state == "pending" and "127.0.0.1 is a loopback address" in \
            delivery.last_error
        [endpoint] = db.exec(select(WebhookEndpoint)).all()
        assert endpoint.failures == 1 and "loopback" in endpoint.last_error
    finally:
        client.__exit__(None, None, None)


def test_an_allowed_name_is_sent_to_the_address_that_was_checked(
        settings: Any, db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The request goes to the checked address, with the name in ``Host`` (there is no
    DNS for ``hooks.corp.internal``: only the pinned address can reach the receiver)."""
    port = receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(netguard, "resolve", answers("127.0.0.1"))
    app, client = _hooked_app(settings, db, receiver,
                              f"http://hooks.corp.internal:{port}/hook",
                              allowed=["hooks.corp.internal"])
    try:
        assert send_now(app, "webhook") == 1
        [got] = receiver.received
        assert got["header_host"] == f"hooks.corp.internal:{port}"
        assert receiver.bad_signatures == 0
    finally:
        client.__exit__(None, None, None)
