"""``caseforum backup`` and ``caseforum restore`` on a real SQLite instance with real
files: a restored empty instance holds the same dossiers, documents (byte for byte),
posts and parcels; a damaged archive or a non-empty target is refused with one line and
leaves the target as it was."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from caseforum.cli import cli
from tests.conftest import login
from tests.dossier_helpers import pdf_bytes, token_for, upload
from tests.forum_helpers import make_category, start_thread

TABLES = ("application", "document", "post", "ice_parcel", "user", "thread")


def _run(data_dir: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _snapshot(data_dir: Path) -> dict[str, Any]:
    """Every row of the tables a user would miss, and the bytes of every document."""
    engine = create_engine(f"sqlite:///{data_dir / 'caseforum.db'}")
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            rows = {table: [tuple(row) for row in connection.execute(
                        text(f'SELECT * FROM "{table}" ORDER BY id'))]
                    for table in TABLES if table in present}
            shas = connection.execute(text("SELECT sha256 FROM document")).scalars().all()
    finally:
        engine.dispose()
    files = {sha: (data_dir / "files" / sha[:2] / sha[2:4] / sha).read_bytes() for sha in shas}
    return {"rows": rows, "files": files}


@pytest.fixture
def archive(tmp_path: Path, data_dir: Path, client: Any, db: Any,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any]]:
    """A backup of the demo instance plus a new thread and an uploaded document."""
    uploaded = upload(client, token_for(db, "us.admin"), "US", "16991574",
                      pdf_bytes("Search report kept in the backup"))
    assert uploaded.status_code in (200, 201), uploaded.text
    csrf = login(client, "jp.examiner")
    start_thread(client, csrf, make_category(db, "Backups"), "Kept across restores",
                 "This post must come back after a restore.")
    key = data_dir / "secret_key"  # as load_settings generates it when none is set
    key.write_text("k" * 48)
    key.chmod(0o600)
    dest = tmp_path / "caseforum-backup.tar.gz"
    result = _run(data_dir, "backup", str(dest), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"to {dest}" in result.output
    return dest, _snapshot(data_dir)


def test_restore_into_an_empty_instance_gives_the_same_content(
        archive: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dest, before = archive
    assert any(b"This post must come back" in str(row).encode() for row in before["rows"]["post"])
    assert len(before["files"]) > 1
    fresh = tmp_path / "fresh"
    result = _run(fresh, "restore", str(dest), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"{len(before['rows']['application'])} dossiers" in result.output
    after = _snapshot(fresh)
    assert after["rows"] == before["rows"]
    assert after["files"] == before["files"]
    with tarfile.open(dest) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert not any(name.startswith("data/search") for name in names)  # rebuilt, not kept
    assert manifest["counts"]["posts"] == len(before["rows"]["post"])
    assert manifest["schema_revisions"]
    assert dest.stat().st_mode & 0o777 == 0o600  # readable by its owner only
    restored_key = fresh / "secret_key"  # sessions and the ICE keys need it
    assert restored_key.read_text() == "k" * 48
    assert restored_key.stat().st_mode & 0o777 == 0o600
    # the restored instance serves: the upgraded schema and the files are in place
    listing = _run(fresh, "users", "list", monkeypatch=monkeypatch)
    assert "jp.examiner" in listing.output


def _damaged(dest: Path, tmp_path: Path) -> Path:
    """The same archive with one stored document's bytes changed (manifest untouched)."""
    bad = tmp_path / "damaged.tar"
    with tarfile.open(dest) as source, tarfile.open(bad, "w") as out:
        changed = False
        for member in source:
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data and member.name.startswith("data/files/") and not changed:
                data = data[:-1] + bytes([data[-1] ^ 1])
                changed = True
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    assert changed
    return bad


def test_a_damaged_archive_is_refused_and_the_target_left_alone(
        archive: tuple[Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dest, _ = archive
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "keep.txt").write_text("an administrator's note")
    for bad, message in ((_damaged(dest, tmp_path), "does not match its SHA-256"),
                         (tmp_path / "truncated.tar.gz", "damaged or not a CaseForum backup")):
        if bad.name == "truncated.tar.gz":
            bad.write_bytes(dest.read_bytes()[: dest.stat().st_size // 2])
        result = _run(fresh, "restore", str(bad), monkeypatch=monkeypatch)
        assert result.exit_code == 1
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.output
        assert "nothing was restored" in lines[0]
        assert sorted(p.name for p in fresh.iterdir()) == ["keep.txt"]
        assert not (fresh / "files").exists()
        assert not list(tmp_path.glob(".fresh.restore-*"))  # the staging folder is gone


def test_a_non_empty_target_needs_force(archive: tuple[Path, dict[str, Any]],
                                        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest, before = archive
    refused = _run(data_dir, "restore", str(dest), monkeypatch=monkeypatch)
    assert refused.exit_code == 1
    assert "not empty" in refused.output and "--force" in refused.output
    forced = _run(data_dir, "restore", str(dest), "--force", monkeypatch=monkeypatch)
    assert forced.exit_code == 0, forced.output
    assert _snapshot(data_dir) == before


def test_backup_refuses_to_overwrite(archive: tuple[Path, dict[str, Any]], data_dir: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dest, _ = archive
    result = _run(data_dir, "backup", str(dest), monkeypatch=monkeypatch)
    assert result.exit_code == 1 and "exists already" in result.output


def test_postgresql_round_trip_with_pg_dump(postgres_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL instance: pg_dump's custom format in, pg_restore in one transaction
    out, into a second, empty database."""
    import psycopg

    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    second = f"{postgres_url}_copy"
    with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{second.rsplit("/", 1)[1]}"')
    try:
        monkeypatch.setenv("CASEFORUM_DATABASE_URL", postgres_url)
        source = tmp_path / "source"
        assert _run(source, "init", monkeypatch=monkeypatch).exit_code == 0
        made = _run(source, "users", "create", "nz.examiner", "--office", "NZ", "--role",
                    "examiner", monkeypatch=monkeypatch)
        assert made.exit_code == 0, made.output
        dest = tmp_path / "pg.tar"
        result = _run(source, "backup", str(dest), monkeypatch=monkeypatch)
        assert result.exit_code == 0, result.output
        with tarfile.open(dest) as tar:
            assert "database/caseforum.pgdump" in tar.getnames()
        monkeypatch.setenv("CASEFORUM_DATABASE_URL", second)
        result = _run(tmp_path / "target", "restore", str(dest), monkeypatch=monkeypatch)
        assert result.exit_code == 0, result.output
        listing = _run(tmp_path / "target", "users", "list", monkeypatch=monkeypatch)
        assert "nz.examiner" in listing.output
        again = _run(tmp_path / "target", "restore", str(dest), monkeypatch=monkeypatch)
        assert again.exit_code == 1 and "--force" in again.output
    finally:
        with psycopg.connect(admin.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{second.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_an_older_archive_is_upgraded_and_a_newer_one_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from caseforum import schema
    from caseforum.plugin_host import PluginHost

    source = tmp_path / "source"
    assert _run(source, "init", monkeypatch=monkeypatch).exit_code == 0
    host = PluginHost()
    host.load()
    engine = create_engine(f"sqlite:///{source / 'caseforum.db'}")
    cfg = schema.alembic_config(host.migrations())
    with engine.begin() as connection:  # the database as the previous release left it
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0007_remote_dossiers")
    old = tmp_path / "old.tar"
    assert _run(source, "backup", str(old), monkeypatch=monkeypatch).exit_code == 0
    result = _run(tmp_path / "fresh", "restore", str(old), monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    assert "schema upgraded" in result.output
    restored = create_engine(f"sqlite:///{tmp_path / 'fresh' / 'caseforum.db'}")
    with restored.connect() as connection:
        at = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    restored.dispose()
    # upgraded to this release's schema, whatever its newest revisions are
    assert at == set(ScriptDirectory.from_config(cfg).get_heads())

    with engine.begin() as connection:  # as a newer release would leave it
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_future' "
                                "WHERE version_num = '0007_remote_dossiers'"))
    engine.dispose()
    new = tmp_path / "new.tar"
    assert _run(source, "backup", str(new), monkeypatch=monkeypatch).exit_code == 0
    result = _run(tmp_path / "other", "restore", str(new), monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert "0099_future" in result.output and "newer CaseForum" in result.output
    assert not (tmp_path / "other" / "caseforum.db").exists()
