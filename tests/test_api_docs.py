"""The interactive API docs at /api/v1/docs work offline under the app's CSP: Swagger UI
comes from /static/vendor (the npm lock file), started from a static script."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.browser import screenshot


def test_docs_page_loads_swagger_ui_from_the_app_itself(client: TestClient) -> None:
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources  # no CDN
    assert "<script>" not in html  # nothing inline for the CSP to block
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for asset in sources:
        assert client.get(asset).status_code == 200, asset
    assert 'data-openapi-url="/openapi.json"' in html


@pytest.mark.browser
def test_docs_page_lists_the_operations_without_console_errors(page, live_server) -> None:
    page.goto(f"{live_server.url}/api/v1/docs")
    for method, path in (("get", "/api/v1/dossiers/{office}/{number}"),
                         ("post", "/api/v1/dossiers"), ("get", "/api/v1/offices")):
        row = page.locator(f'.opblock-{method}:has(.opblock-summary-path[data-path="{path}"])')
        row.wait_for(timeout=20_000)
        assert row.locator(".opblock-summary-method").inner_text() == method.upper()
    assert "CaseForum API" in page.locator(".info .title").inner_text()
    screenshot(page, "api-docs")
    assert page.console_errors == []  # no CSP violation, nothing from a CDN
