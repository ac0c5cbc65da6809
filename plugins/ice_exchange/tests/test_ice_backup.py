"""``caseforum backup`` / ``restore`` with ICE parcels: a parcel sent before the backup
is still there after a restore into an empty folder, and its file still decrypts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from caseforum_ice_exchange import audit
from caseforum_ice_exchange.models import IceParcel
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.app import create_app
from caseforum.cli import cli
from caseforum.config import Settings, load_settings
from caseforum.db import make_engine, open_session
from tests.conftest import login

from .test_ice_hosted import CLAIMS, open_request


def _run(settings: Settings, data_dir: Path, *args: str,
         monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", settings.secret_key or "")
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _parcels(settings: Settings) -> list[tuple[Any, ...]]:
    engine = make_engine(settings)
    with open_session(engine) as session:
        rows = [(p.id, p.kind, p.status, p.files, p.receipt)
                for p in session.exec(select(IceParcel).order_by(IceParcel.id))]
        assert all(r.ok for r in audit.verify_all(session))  # the audit chains still hold
    engine.dispose()
    return rows


def test_a_restored_instance_keeps_its_parcels_readable(
        hosted_app: Any, hosted_settings: Settings, as_user: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sg, sg_csrf = as_user("sg.examiner", on=hosted_app)
    exchange_id = open_request(sg, sg_csrf)
    before = _parcels(hosted_settings)
    assert before
    archive = tmp_path / "ice.tar"
    made = _run(hosted_settings, hosted_settings.data_dir, "backup", str(archive),
                monkeypatch=monkeypatch)
    assert made.exit_code == 0 and f"{len(before)} parcels" in made.output, made.output

    fresh = tmp_path / "fresh"
    restored = _run(hosted_settings, fresh, "restore", str(archive), monkeypatch=monkeypatch)
    assert restored.exit_code == 0, restored.output
    settings = load_settings(data_dir=fresh, secret_key=hosted_settings.secret_key,
                             plugins=hosted_settings.plugins)
    assert _parcels(settings) == before
    with TestClient(create_app(settings)) as jp:
        login(jp, "jp.examiner")
        page = jp.get(f"/ice/{exchange_id}").text
        link = re.search(r'href="(/api/v1/ice/parcels/[^"]+/files/claims.txt)"', page)
        assert link, page
        assert jp.get(link.group(1)).content == CLAIMS
