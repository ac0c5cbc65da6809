"""Files left by crashed uploads are removed, by `caseforum sweep` and by the server
itself; files in use, and uploads still in progress, are never touched."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.cli import cli
from caseforum.models import Document
from tests.forum_helpers import wait_for

HOUR = 3600


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def _leftovers(data_dir: Path, *, age: float) -> tuple[Path, Path]:
    """A half-written temporary upload and a stored file no document uses."""
    store = data_dir / "files"
    tmp = store / "tmp" / f"tmpcrash{int(age)}"
    tmp.write_bytes(b"%PDF-1.7 half an upload")
    content = b"%PDF-1.7 stored, but the row never committed " + str(age).encode()
    sha = hashlib.sha256(content).hexdigest()
    orphan = store / sha[:2] / sha[2:4] / sha
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(content)
    return _age(tmp, age), _age(orphan, age)


def test_cli_sweep_removes_old_leftovers_and_keeps_what_is_used(data_dir, db,
                                                                monkeypatch) -> None:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "w" * 32)
    old_tmp, old_orphan = _leftovers(data_dir, age=2 * HOUR)
    new_tmp, new_orphan = _leftovers(data_dir, age=60)  # an upload still in progress
    used = [data_dir / "files" / s[:2] / s[2:4] / s
            for s in db.exec(select(Document.sha256)).all()]
    assert used and all(p.exists() for p in used)
    for path in used:
        _age(path, 3 * HOUR)  # old, but documents use them

    result = CliRunner().invoke(cli, ["sweep"])
    assert result.exit_code == 0, result.output
    assert "removed 1 temporary and 1 unused files" in result.output
    assert not old_tmp.exists() and not old_orphan.exists()
    assert new_tmp.exists() and new_orphan.exists()
    assert all(p.exists() for p in used)

    again = CliRunner().invoke(cli, ["sweep", "--min-age-minutes", "0"])
    assert "removed 1 temporary and 1 unused files" in again.output
    assert not new_tmp.exists() and not new_orphan.exists()
    assert all(p.exists() for p in used)


def test_the_server_sweeps_periodically(app, data_dir) -> None:
    old_tmp, old_orphan = _leftovers(data_dir, age=2 * HOUR)
    app.state.sweeper.interval = 0.2  # every 0.2 s instead of every 30 minutes
    with TestClient(app):
        assert wait_for(lambda: not old_tmp.exists() and not old_orphan.exists(), 10)
