"""Behind a load balancer: forwarded headers count only from trusted proxies, the log-in
throttle then counts the user's address, and cookies become Secure over HTTPS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.app import create_app
from caseforum.config import Settings, load_settings
from caseforum.models import LoginFailure
from tests.conftest import csrf_of

BALANCER = ("10.1.2.3", 40000)  # the peer a proxied request comes from


def _app(settings: Settings, **changes: Any) -> Any:
    return create_app(load_settings(data_dir=settings.data_dir, secret_key="s" * 32,
                                    **changes))


def _wrong_login(client: TestClient, **headers: str) -> int:
    form = client.get("/login", headers=headers)
    return client.post("/login", headers=headers, data={
        "username": "jp.examiner", "password": "wrong", "csrf_token": csrf_of(form.text)},
    ).status_code


def _failure_addresses(app: Any) -> list[str]:
    from caseforum.db import open_session

    with open_session(app.state.engine) as session:
        return [row.address for row in session.exec(select(LoginFailure)).all()]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    app = _app(settings, trusted_proxies=["10.9.0.0/16"])  # the balancer is not in it
    with TestClient(app, client=BALANCER) as client:
        assert _wrong_login(client, **{"X-Forwarded-For": "198.51.100.7"}) == 401
    assert _failure_addresses(app) == ["10.1.2.3"]


def test_a_trusted_proxy_makes_the_throttle_count_the_forwarded_client(
        settings: Settings) -> None:
    app = _app(settings, trusted_proxies=["10.1.0.0/16"], login_max_failures_per_address=2,
               login_max_failures=50)
    with TestClient(app, client=BALANCER) as client:
        # what a client wrote itself ("1.1.1.1") is left of the address the proxy saw
        chain = {"X-Forwarded-For": "1.1.1.1, 198.51.100.7"}
        assert _wrong_login(client, **chain) == 401
        assert _wrong_login(client, **chain) == 401
        assert _wrong_login(client, **chain) == 429  # this client's third try
        # another user behind the same balancer is not locked out with them
        assert _wrong_login(client, **{"X-Forwarded-For": "198.51.100.8"}) == 401
    assert sorted(set(_failure_addresses(app))) == ["198.51.100.7", "198.51.100.8"]


def test_forwarded_proto_and_host_from_a_trusted_proxy(settings: Settings) -> None:
    app = _app(settings, trusted_proxies=["10.1.2.3"])
    with TestClient(app, client=BALANCER) as client:
        page = client.get("/login", headers={"X-Forwarded-Proto": "https",
                                             "X-Forwarded-Host": "forum.office.example"})
        assert "secure" in page.headers["set-cookie"].lower()
        # an htmx call from a public page that needs a log-in comes back to that page:
        # the page's host is recognised as this site only through X-Forwarded-Host
        came_from = {"HX-Request": "true", "X-Forwarded-Proto": "https",
                     "HX-Current-URL": "https://forum.office.example/forum?page=2"}
        back = client.get("/forum", headers={**came_from,
                                             "X-Forwarded-Host": "forum.office.example"})
        assert back.headers["HX-Redirect"] == "/login?next=/forum%3Fpage%3D2"
        assert client.get("/forum", headers=came_from).headers["HX-Redirect"] == "/login"
    with TestClient(app, client=("192.0.2.50", 1)) as direct:
        plain = direct.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in plain.headers["set-cookie"].lower()


def test_an_https_base_url_makes_cookies_secure(settings: Settings) -> None:
    app = _app(settings, base_url="https://forum.office.example")
    with TestClient(app) as client:
        assert "secure" in client.get("/login").headers["set-cookie"].lower()


def test_a_bad_proxy_entry_is_named_at_start(settings: Settings) -> None:
    from caseforum.config import SettingsError

    with pytest.raises(SettingsError, match="CASEFORUM_TRUSTED_PROXIES: 'balancer'"):
        load_settings(data_dir=settings.data_dir, trusted_proxies=["balancer"])


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on loopback as ``caseforum serve`` runs it (uvicorn's own
    proxy handling off), trusting loopback as its balancer."""
    import uvicorn

    app = _app(settings, trusted_proxies=["127.0.0.1"], login_max_failures_per_address=1,
               login_max_failures=50)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_real_server_behind_a_proxy_throttles_each_client(served: str) -> None:
    def attempt(client_address: str) -> int:
        with httpx.Client(base_url=served, headers={"X-Forwarded-For": client_address}) as c:
            form = c.get("/login")
            return c.post("/login", data={"username": "jp.examiner", "password": "wrong",
                                          "csrf_token": csrf_of(form.text)}).status_code

    assert attempt("198.51.100.7") == 401
    assert attempt("198.51.100.7") == 429
    assert attempt("198.51.100.9") == 401  # a different user behind the same proxy


def test_the_settings_examples_of_the_proxy_and_metrics_sections_load(tmp_path) -> None:
    """docs/configuration.md's TOML examples for these sections are valid settings."""
    import re
    import tomllib
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    examples = []
    for section in ("## Behind a proxy", "## Metrics and readiness"):
        text = doc.split(section, 1)[1].split("\n## ", 1)[0]
        examples += re.findall(r"```toml\n(.*?)```", text, re.S)
    assert len(examples) == 2
    for example in examples:
        settings = load_settings(data_dir=tmp_path, **tomllib.loads(example))
        assert settings.trusted_proxies or settings.metrics_allow
