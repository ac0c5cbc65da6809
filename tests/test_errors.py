"""Bad input gets a clear 4xx in one shape, ``{"detail", "code"}``; a bug is a logged 500.

Each attack input is named after what it does: ids beyond what the database holds,
negative ids, deeply nested JSON, broken multipart bodies, oversized bodies (counted
before they are read) and anonymous uploads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import errors
from caseforum.authz import ANONYMOUS, Viewer, require
from caseforum.models import Category, Document
from tests.dossier_helpers import token_for

HUGE = "110615310570572070912"  # beyond 64 bits
BEYOND_32_BITS = str(2**31)  # breaks a PostgreSQL integer column


@pytest.fixture
def forum_token(db: Any) -> dict[str, str]:
    return token_for(db, "jp.examiner", "forum", "dossiers:read", "dossiers:write", "ice")


def _assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# Ids the database cannot hold ---------------------------------------------------------


@pytest.mark.parametrize("path", [
    f"/api/v1/threads/{HUGE}", f"/api/v1/threads/{BEYOND_32_BITS}",
    f"/api/v1/documents/{HUGE}", f"/api/v1/documents/{HUGE}/content",
])
def test_huge_int_ids_in_api_paths_are_a_422_naming_the_limit(client: TestClient,
                                                               forum_token: dict[str, str],
                                                               path: str) -> None:
    body = _assert_error(client.get(path, headers=forum_token), 422, "invalid_input")
    assert "less than or equal to 2147483647" in body["detail"]


def test_huge_int_id_in_a_page_path_is_a_422_page(as_user: Any) -> None:
    browser, _ = as_user("jp.examiner")
    response = browser.get("/documents/99999999999999999999")
    assert response.status_code == 422
    assert "Please correct the input" in response.text
    assert "2147483647" in response.text


def test_huge_int_id_in_a_query_is_a_422(client: TestClient, forum_token: dict[str, str]) -> None:
    response = client.get("/api/v1/threads?category=57542555386661183488", headers=forum_token)
    body = _assert_error(response, 422, "invalid_input")
    assert body["detail"].startswith("category:")


def test_huge_int_ids_in_json_bodies_are_a_422(client: TestClient,
                                               forum_token: dict[str, str]) -> None:
    response = client.post("/api/v1/threads", headers=forum_token,
                           json={"category": int(HUGE), "title": "t", "body": "b"})
    _assert_error(response, 422, "invalid_input")
    thread = client.get("/api/v1/threads", headers=forum_token).json()[0]
    response = client.post(f"/api/v1/threads/{thread['id']}/posts", headers=forum_token,
                           json={"body": "hello", "reply_to": int(HUGE)})
    _assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("path", ["/api/v1/threads/-1", "/api/v1/threads/0",
                                  "/api/v1/documents/-5", "/api/v1/threads?category=-3"])
def test_negative_and_zero_ids_are_a_422(client: TestClient, forum_token: dict[str, str],
                                         path: str) -> None:
    body = _assert_error(client.get(path, headers=forum_token), 422, "invalid_input")
    assert "greater than or equal to 1" in body["detail"]


def test_ids_that_fit_but_do_not_exist_are_still_a_404(client: TestClient,
                                                       forum_token: dict[str, str]) -> None:
    _assert_error(client.get("/api/v1/threads/2147483647", headers=forum_token),
                  404, "not_found")


# Nested JSON and broken multipart --------------------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [900, 100_000])  # parsed but deep; beyond the parser
def test_deeply_nested_json_manifest_at_the_ice_inbox_is_refused_as_malformed(
        client: TestClient, depth: int) -> None:
    for manifest in (_deep(depth), '{"a":' * depth + "1" + "}" * depth):
        response = client.post("/api/v1/ice/inbox",
                               data={"manifest": manifest, "signature": "AAAA"},
                               files={"0": ("0", b"x")})
        _assert_error(response, 400, "malformed")


def test_deeply_nested_json_body_to_the_api_is_a_4xx(client: TestClient,
                                                     forum_token: dict[str, str]) -> None:
    headers = {**forum_token, "Content-Type": "application/json"}
    response = client.post("/api/v1/ice/exchanges", headers=headers, content=_deep(100_000))
    _assert_error(response, 400, "malformed")
    response = client.post("/api/v1/threads", headers=headers,
                           content='{"category": 1, "title": "t", "body": ' + _deep(100_000)
                           + "}")
    assert 400 <= response.status_code < 500, response.text
    assert "code" in response.json()


def test_malformed_multipart_upload_is_a_400(client: TestClient, db: Any) -> None:
    headers = token_for(db, "jp.examiner")
    document = db.exec(select(Document)).first()
    assert document is not None
    response = client.post(
        "/api/v1/packages", headers={**headers,
                                     "Content-Type": "multipart/form-data; boundary=XYZ"},
        content=b"--XYZ\r\nContent-Disposition: form-data; name=\"package\"\r\n\r\nno end")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"] in ("bad_request", "invalid_input")
    response = client.post(
        "/api/v1/ice/exchanges", headers={**headers,
                                          "Content-Type": "multipart/form-data"},
        content=b"garbage without a boundary")
    assert 400 <= response.status_code < 500, response.text


# One shape for every error ----------------------------------------------------------------


def test_framework_errors_have_a_code_too(client: TestClient) -> None:
    _assert_error(client.get("/api/v1/no-such-thing"), 404, "not_found")
    _assert_error(client.get("/api/v1/threads", headers={"Authorization": "Basic x"}),
                  401, "unauthorized")
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer cf_nope"})
    _assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_domain_errors_propagate_as_4xx_with_their_code(client: TestClient, db: Any) -> None:
    admin = token_for(db, "admin", "forum")
    existing = db.exec(select(Category)).first()
    response = client.post("/api/v1/categories", headers=admin, json={"name": existing.name})
    body = _assert_error(response, 422, "invalid_input")
    assert "exists already" in body["detail"]


def test_a_bug_is_a_500_with_a_logged_traceback_not_a_422(app: Any,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    def broken() -> None:
        int("not a number")  # a ValueError from our own code

    app.add_api_route("/api/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/api/v1/broken")
    _assert_error(response, 500, "server_error")
    assert "invalid literal for int()" not in response.text
    # the 500 answer comes from outside the middleware stack and still carries the headers
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


def test_require_raises_the_family_without_fastapi() -> None:
    examiner = Viewer(user_id=1, username="x", office_code="JP", role="examiner")
    with pytest.raises(errors.NotFound):
        require(examiner, "plugins.manage", hide=True)
    with pytest.raises(errors.Unauthorized):
        require(ANONYMOUS, "plugins.manage")
    with pytest.raises(errors.Forbidden) as caught:
        require(examiner, "plugins.manage")
    assert caught.value.status == 403 and caught.value.code == "forbidden"
    assert not isinstance(caught.value, ValueError)


def test_the_browser_gets_the_error_page_and_htmx_its_fragment(as_user: Any) -> None:
    browser, _ = as_user("jp.examiner")
    page = browser.get(f"/threads/{2**31 - 1}")
    assert page.status_code == 404 and "<html" in page.text.lower()
    fragment = browser.get(f"/threads/{2**31 - 1}", headers={"HX-Request": "true"})
    assert fragment.status_code == 404
    assert "<html" not in fragment.text.lower() and "No such thread" in fragment.text


def test_cli_prints_a_family_error_as_one_line(settings: Any, monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from caseforum.cli import cli

    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "s" * 32)
    result = CliRunner().invoke(cli, ["offices", "set-roles", "JP", "--ice-role", "bogus"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unknown ICE role 'bogus': use none, donor, recipient or both"]


# Bodies bounded before they are read ---------------------------------------------------


def test_a_json_body_over_the_limit_is_refused_by_its_declared_length(
        client: TestClient, forum_token: dict[str, str]) -> None:
    response = client.post("/api/v1/threads", headers=forum_token,
                           content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    body = _assert_error(response, 413, "too_large")
    assert "1 MB" in body["detail"]


def test_a_json_body_without_a_length_is_counted_and_cut(
        client: TestClient, forum_token: dict[str, str]) -> None:
    """Chunked, so no Content-Length to judge by (the uvicorn test below shows the cut
    happening while the client is still sending)."""

    def chunks() -> Any:
        for _ in range(64):
            yield b" " * (1024 * 1024)

    response = client.post("/api/v1/threads", content=chunks(),
                           headers={**forum_token, "Content-Type": "application/json"})
    _assert_error(response, 413, "too_large")


def test_an_anonymous_upload_is_refused_before_its_body_is_read(client: TestClient) -> None:
    def body() -> Any:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    response = client.post("/api/v1/packages", content=body(),
                           headers={"Content-Type": "multipart/form-data; boundary=x"})
    _assert_error(response, 401, "unauthorized")
    response = client.post("/api/v1/packages", content=body(),
                           headers={"Content-Type": "multipart/form-data; boundary=x",
                                    "Authorization": "Bearer cf_forged"})
    _assert_error(response, 401, "unauthorized")


def test_an_upload_over_max_upload_mb_is_refused_by_its_declared_length(
        client: TestClient, db: Any) -> None:
    headers = token_for(db, "jp.examiner")
    response = client.post("/api/v1/packages", content=b"x",
                           headers={**headers, "Content-Length": str(400 * 1024 * 1024),
                                    "Content-Type": "multipart/form-data; boundary=x"})
    body = _assert_error(response, 413, "too_large")
    assert "251 MB" in body["detail"]


def test_a_browser_form_over_the_limit_gets_a_page_not_json(as_user: Any) -> None:
    browser, csrf = as_user("jp.examiner")
    response = browser.post("/forum/categories", headers={"Accept": "text/html"},
                            data={"name": "x" * (2 * 1024 * 1024), "csrf_token": csrf})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "may have at most 1 MB" in response.text


class _Server:
    """``caseforum`` under uvicorn in its own process, so its memory can be measured."""

    def __init__(self, data_dir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "CASEFORUM_DATA_DIR": str(data_dir),
               "CASEFORUM_SECRET_KEY": "s" * 32, "CASEFORUM_RUN_CONSUMERS": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "caseforum.app:create_app",
             "--port", str(self.port), "--log-level", "warning"], env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise AssertionError("the server did not start")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def _rest_of(s: socket.socket, answer: bytes) -> bytes:
    """Read on until the answer's head and body are in (the server closes afterwards)."""
    s.setblocking(True)
    s.settimeout(10)
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        try:
            more = s.recv(4096)
        except (ConnectionResetError, TimeoutError):
            break
        if not more:
            break
        answer += more
    return answer


def _post_big(port: int, head: bytes, total: int) -> tuple[bytes, int]:
    """Send ``total`` bytes of chunked JSON-ish body; stop as soon as the server answers.
    Returns the answer's first bytes and how many body bytes went out."""
    chunk = b" " * (256 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        s.setblocking(False)
        try:
            while sent < total:
                try:
                    answer = s.recv(4096)
                except BlockingIOError:
                    answer = b""
                if answer:
                    return _rest_of(s, answer), sent
                piece = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                s.setblocking(True)
                s.sendall(piece)
                s.setblocking(False)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # closed on us: the answer may be in
            try:
                return _rest_of(s, b""), sent
            except OSError:
                return b"", sent
        return _rest_of(s, b""), sent


@pytest.mark.slow
def test_a_200_mb_json_body_is_refused_and_the_server_stays_small(data_dir: Path,
                                                                    db: Any) -> None:
    token = token_for(db, "jp.examiner", "forum")["Authorization"]
    server = _Server(data_dir)
    try:
        before = server.rss_kb()
        size = 200 * 1024 * 1024
        declared = (f"POST /api/v1/threads HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(declared)  # the head only: the answer must not wait for the body
            answer = _rest_of(s, b"")
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b'"code":"too_large"' in answer.replace(b" ", b"")
        streamed = (f"POST /api/v1/threads HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    ).encode()
        answer, sent = _post_big(server.port, streamed, size)
        assert sent < size, "the server read the whole streamed body"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer
        grown_mb = (server.rss_kb() - before) / 1024
        print(f"server RSS grew by {grown_mb:.1f} MB for two 200 MB bodies")
        assert grown_mb < 20
    finally:
        server.stop()


def test_the_openapi_document_describes_the_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/threads/{thread_id}"]["get"]
    for status in ("401", "404", "413", "422"):
        ref = operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut")
    error_out = spec["components"]["schemas"]["ErrorOut"]
    assert set(error_out["required"]) == {"detail", "code"}
    parameter = operation["parameters"][0]
    assert parameter["schema"]["maximum"] == 2**31 - 1

