"""Bulk packages cannot ask for unbounded work: ZIP bombs, lying members, too many
files are refused quickly with a 4xx; a good package never blocks other writers."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import struct
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import select

from caseforum.models import Application, Document, Event
from caseforum.storage import FileStore
from tests.dossier_helpers import dossier_json, package_bytes, pdf_bytes, token_for

MB = 1024 * 1024


@pytest.fixture
def us(client: TestClient, db) -> dict[str, str]:
    return token_for(db, "us.admin")


def _files(data_dir: Path) -> list[Path]:
    """Every file in the store, temporary ones included."""
    return sorted(p for p in (data_dir / "files").rglob("*") if p.is_file())


def _counts(db) -> tuple[int, ...]:
    db.expire_all()
    return tuple(db.exec(select(func.count()).select_from(m)).one()
                 for m in (Application, Document, Event))


def _manifest(files: list[str], number: str = "16/740,760") -> dict[str, Any]:
    return {"office": "US", "dossiers": [{
        **dossier_json("US", number, publication_number="US 2020/0150123 A1"),
        "documents": [{"file": f, "code": "CTNF", "date": "2020-06-01"} for f in files]}]}


def _post(client: TestClient, headers: dict[str, str], body: bytes) -> Any:
    return client.post("/api/v1/packages", headers=headers,
                       files={"package": ("p.zip", body, "application/zip")})


def _refused(client, us, db, data_dir, body: bytes, words: str) -> float:
    before, files = _counts(db), _files(data_dir)
    started = time.monotonic()
    response = _post(client, us, body)
    took = time.monotonic() - started
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert _counts(db) == before and _files(data_dir) == files
    return took


def test_zip_bomb_is_refused_from_its_directory_quickly(client, us, db, data_dir) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(_manifest(["docs/a.txt"])))
        archive.writestr("docs/a.txt", b"a" * (200 * MB))  # 200 MB in about 200 KB
    bomb = buffer.getvalue()
    assert len(bomb) < 400 * 1024
    took = _refused(client, us, db, data_dir, bomb, "package_max_ratio")
    assert took < 5


def test_reused_member_cannot_multiply_the_work(client, us, db, data_dir) -> None:
    # one 3 MB text member that compresses little, named by 800 documents: 2.4 GB of work
    member = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(48_000))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(_manifest(["docs/a.txt"] * 800)))
        archive.writestr("docs/a.txt", member)
    took = _refused(client, us, db, data_dir, buffer.getvalue(), "package_max_total_mb")
    assert took < 5


def _lie_about_size(body: bytes, name: str, declared: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in both ZIP headers."""
    data = bytearray(body)
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30:local + 30 + name_len] == encoded:
            struct.pack_into("<I", data, local + 22, declared)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len] == encoded:
            struct.pack_into("<I", data, central + 24, declared)
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def test_member_bigger_than_it_declares_is_a_clear_4xx(client, us, db, data_dir) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(_manifest(["docs/a.txt"])))
        archive.writestr("docs/a.txt", "".join(f"line {i}\n" for i in range(20_000)))
    body = _lie_about_size(buffer.getvalue(), "docs/a.txt", 1500)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.getinfo("docs/a.txt").file_size == 1500  # it holds 168 KB
    _refused(client, us, db, data_dir, body, "docs/a.txt")


def test_too_many_members_are_refused(client, us, db, data_dir) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(_manifest([])))
        for i in range(10_001):
            archive.writestr(f"x/{i}", b"")
    _refused(client, us, db, data_dir, buffer.getvalue(), "package_max_members")


def test_manifest_with_a_byte_order_mark_is_accepted(client, us, db) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json",
                         b"\xef\xbb\xbf" + json.dumps(_manifest(["docs/a.pdf"])).encode())
        archive.writestr("docs/a.pdf", pdf_bytes("written by a Windows tool"))
    response = _post(client, us, buffer.getvalue())
    assert response.status_code == 201, response.text
    assert response.json()["documents"] == 1


class _ProbingStore(FileStore):
    """The real store; while it inflates a file, another writer tries to take the
    SQLite write lock with a short time-out and records whether it got it."""

    def __init__(self, root: Path, database: Path) -> None:
        super().__init__(root)
        self.database = database
        self.writer_got_in: list[bool] = []

    def put(self, stream: Any, *, max_bytes: int) -> Any:
        other = sqlite3.connect(self.database, timeout=0.5, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            self.writer_got_in.append(True)
        except sqlite3.OperationalError:
            self.writer_got_in.append(False)
        finally:
            other.close()
        return super().put(stream, max_bytes=max_bytes)


def test_inflating_a_package_does_not_hold_the_write_lock(app, client, us, db,
                                                          data_dir) -> None:
    probe = _ProbingStore(data_dir / "files", data_dir / "caseforum.db")
    app.state.store = probe
    files = {f"docs/{i}.pdf": pdf_bytes(f"office action {i}") for i in range(3)}
    response = _post(client, us, package_bytes(_manifest(list(files)), files))
    assert response.status_code == 201, response.text
    assert probe.writer_got_in == [True, True, True]


def test_member_named_with_a_dot_segment_is_found(client, us) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(_manifest(["docs/a.pdf"])))
        archive.writestr("docs/./a.pdf", pdf_bytes("made by a tool that writes ./"))
    response = _post(client, us, buffer.getvalue())
    assert response.status_code == 201, response.text
