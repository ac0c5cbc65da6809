"""The ``caseforum`` command: happy paths and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from caseforum.app import create_app
from caseforum.cli import cli
from caseforum.config import load_settings


@pytest.fixture
def run(data_dir: Path, monkeypatch):
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0]


def test_user_created_with_password_from_stdin_can_log_in(run, data_dir) -> None:
    result = run("users", "create", "nz.examiner", "--office", "nz", "--role", "examiner",
                 "--password-stdin", input="a-long-password\n")
    assert result.exit_code == 0, result.output
    assert "created nz.examiner (NZ, examiner)" in result.output
    listing = run("users", "list")
    assert "nz.examiner" in listing.output
    app = create_app(load_settings())
    with TestClient(app) as client:
        from tests.conftest import login

        login(client, "nz.examiner", "a-long-password")
        assert "Intellectual Property Office of New Zealand" in client.get("/").text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("users", "create", "someone", "--office", "XX", "--role", "examiner"),
         "unknown office 'XX'"),
        (("users", "create", "someone", "--office", "JP", "--role", "boss"),
         "unknown role 'boss'"),
        (("users", "create", "jp.examiner", "--office", "JP", "--role", "examiner"),
         "username 'jp.examiner' is taken"),
        (("tokens", "create", "jp.examiner", "--scope", "everything"),
         "unknown scope 'everything'"),
        (("tokens", "create", "nobody", "--scope", "forum"), "unknown user 'nobody'"),
        (("offices", "add", "ZZZ", "--name", "Nowhere"), "must be two letters"),
        (("offices", "add", "JP", "--name", "Again"), "exists already"),
        (("offices", "set-roles", "QQ", "--role", "accessing"), "unknown office 'QQ'"),
        (("offices", "set-roles", "JP", "--role", "judging"), "unknown office role 'judging'"),
        (("users", "create", "someone", "--office", "JP", "--role", "examiner",
          "--email", "not-an-address"), "is not an e-mail address"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(run, args, fragment) -> None:
    _one_line_error(run(*args), fragment)


def test_user_created_with_an_email_address(run, engine) -> None:
    result = run("users", "create", "nz.reader", "--office", "NZ", "--role", "examiner",
                 "--email", "reader@iponz.example")
    assert result.exit_code == 0, result.output
    from sqlmodel import select

    from caseforum.db import open_session
    from caseforum.models import User

    with open_session(engine) as session:
        made = session.exec(select(User).where(User.username == "nz.reader")).one()
    assert made.email == "reader@iponz.example"


def test_short_password_on_stdin_is_refused_and_nothing_written(run) -> None:
    result = run("users", "create", "ph.examiner", "--office", "PH", "--role", "examiner",
                 "--password-stdin", input="short\n")
    _one_line_error(result, "at least 10 characters")
    assert "ph.examiner" not in run("users", "list").output


def test_token_is_printed_alone_on_the_last_line_and_works(run) -> None:
    result = run("tokens", "create", "kr.examiner", "--scope", "dossiers:read",
                 "--scope", "forum", "--expires-days", "7")
    assert result.exit_code == 0
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("cf_") and " " not in token
    app = create_app(load_settings())
    with TestClient(app) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["scopes"] == ["dossiers:read", "forum"]


def test_offices_add_list_and_set_roles(run) -> None:
    assert run("offices", "add", "BN", "--name", "Brunei IP Office", "--role", "providing",
               "--role", "accessing").exit_code == 0
    listing = run("offices", "list").output
    assert "BN  providing,accessing" in listing
    assert "US  providing " in listing
    assert "SG  accessing " in listing
    result = run("offices", "set-roles", "US", "--role", "providing", "--role", "accessing",
                 "--no-public-access", "--ice-role", "donor")
    assert "US: providing,accessing, public access off, ICE donor" in result.output


def test_plugins_list_shows_version_hooks_and_state(run) -> None:
    output = run("plugins", "list").output
    assert "navigation" in output and "extra_nav_items" in output
    assert "opd_link" in output and "enabled" in output


def test_bad_setting_stops_the_cli_with_one_line(run, monkeypatch) -> None:
    monkeypatch.setenv("CASEFORUM_SESSION_DAYS", "many")
    _one_line_error(run("users", "list"), "bad setting CASEFORUM_SESSION_DAYS")


@pytest.mark.slow  # a fresh interpreter imports the whole app
def test_python_dash_m_runs_the_same_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "caseforum", "offices", "list"],
        capture_output=True, text=True, timeout=60,
        env={"CASEFORUM_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    # a fresh folder without 'init' has no tables: a clean error, no traceback
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    init = subprocess.run([sys.executable, "-m", "caseforum", "init"], capture_output=True,
                          text=True, timeout=60,
                          env={"CASEFORUM_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert init.returncode == 0, init.stderr
    assert "20 offices added" in init.stdout


def test_set_roles_without_role_keeps_the_roles(run) -> None:
    result = run("offices", "set-roles", "JP", "--no-public-access")
    assert "JP: providing,accessing, public access off" in result.output


@pytest.mark.parametrize("version, warned", [((3, 11, 7), True), ((3, 12, 1), False)])
def test_serve_with_workers_on_python_3_11_tells_the_operator(run, monkeypatch, version,
                                                              warned) -> None:
    """Several workers on CPython 3.11 crashed under load (docs/deploy.md, "Python
    version"); ``serve`` says so on stderr before it starts them, and on 3.12 says
    nothing.  uvicorn is replaced here: only what ``serve`` prints is under test."""
    import uvicorn

    started: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: started.append(kw))
    monkeypatch.setattr(sys, "version_info", version)
    result = run("serve", "--workers", "2")
    assert started and started[0]["workers"] == 2
    assert ("Python 3.12" in result.stderr) is warned
