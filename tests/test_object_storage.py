"""Documents in an S3-compatible bucket (``[storage] backend = "s3"``), against a real
S3-protocol server on loopback (``moto_server``, tests/s3_helpers.py): the app's own
upload and download routes, the same refusals as the local store, multipart uploads,
server-side encryption, ``caseforum init`` making the bucket, ``/readyz`` and the sweep.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sqlmodel import Session

from caseforum import hookimpl
from caseforum.app import create_app
from caseforum.cli import cli
from caseforum.config import Settings, SettingsError, load_settings
from caseforum.models import Document
from caseforum.plugin_host import PluginHost
from caseforum.s3_storage import S3Store
from caseforum.storage import FileStore, StorageError
from caseforum.storage_backends import StorageBackend, open_store
from caseforum.sweeper import sweep
from tests.dossier_helpers import dossier_json, pdf_bytes, token_for, upload
from tests.s3_helpers import (
    S3Server,
    object_keys,
    start_s3_server,
    storage_env,
    storage_settings,
)

MB = 1024 * 1024


@pytest.fixture
def s3_settings(data_dir: Path, s3_server: S3Server, s3_bucket: str) -> Settings:
    return load_settings(data_dir=data_dir, secret_key="s" * 32,
                         storage=storage_settings(s3_server.endpoint, s3_bucket))


@pytest.fixture
def s3_app(s3_settings: Settings) -> Any:
    return create_app(s3_settings)


@pytest.fixture
def s3_client(s3_app: Any) -> Any:
    with TestClient(s3_app) as client:
        yield client


@pytest.fixture
def us(s3_client: TestClient, db: Any) -> dict[str, str]:
    headers = token_for(db, "us.admin")
    created = s3_client.post("/api/v1/dossiers", headers=headers,
                             json=dossier_json("US", "16/123,456",
                                               publication_number="US 2019/0094321 A1"))
    assert created.status_code == 201, created.text
    return headers


def test_the_app_stores_and_serves_a_document_from_the_bucket(
        s3_client: TestClient, us: dict[str, str], s3_server: S3Server, s3_bucket: str,
        s3_app: Any, data_dir: Path) -> None:
    content = pdf_bytes("Claim 1. A heat exchanger comprising layered fins.")
    sha = hashlib.sha256(content).hexdigest()
    local_before = sorted(p.name for p in (data_dir / "files").rglob("*") if p.is_file())

    first = upload(s3_client, us, "US", "16123456", content, code="CLM")
    assert first.status_code == 201, first.text
    doc = first.json()
    assert (doc["sha256"], doc["size"]) == (sha, len(content))
    # addressed by SHA-256 in the bucket, and nothing new in the local folder
    assert object_keys(s3_server, s3_bucket) == [f"files/{sha[:2]}/{sha[2:4]}/{sha}"]
    assert sorted(p.name for p in (data_dir / "files").rglob("*") if p.is_file()) \
        == local_before
    download = s3_client.get(f"/api/v1/documents/{doc['id']}/content", headers=us)
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"] == "application/pdf"  # told from the bytes
    # the text layer was read from the bucket's copy: the document is searchable
    with Session(s3_app.state.engine) as session:
        assert "layered fins" in (session.get(Document, doc["id"]).text_content or "")
    assert list((data_dir / "files" / "tmp").iterdir()) == []  # the copy read was removed

    # the same bytes again: a second document, one object
    again = upload(s3_client, us, "US", "16123456", content, code="SRPT")
    assert again.status_code == 201 and again.json()["id"] != doc["id"]
    assert object_keys(s3_server, s3_bucket) == [f"files/{sha[:2]}/{sha[2:4]}/{sha}"]

    metrics = generate_latest(s3_app.state.metrics.registry).decode()  # what /metrics sends
    assert 'caseforum_storage_requests_total{backend="s3",operation="PutObject",' \
           'outcome="ok"} 1.0' in metrics
    assert 'operation="HeadObject",outcome="not_found"' in metrics  # asked before the put


@pytest.mark.parametrize(("content", "status", "message"), [
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", 422,
     "unsupported file type: send PDF, TIFF, PNG, JPEG, XML or UTF-8 text"),
    (b"", 422, "the file is empty"),
    (b"%PDF-1.4\n" + b"0" * (MB + 10), 413, "file too large: the limit is 1 MB"),
])
def test_refused_uploads_get_the_local_stores_answers_and_leave_the_bucket_empty(
        s3_client: TestClient, us: dict[str, str], s3_app: Any, s3_server: S3Server,
        s3_bucket: str, content: bytes, status: int, message: str) -> None:
    s3_app.state.settings.max_upload_mb = 1
    response = upload(s3_client, us, "US", "16123456", content)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert object_keys(s3_server, s3_bucket) == []
    assert list((s3_app.state.settings.storage_dir / "tmp").iterdir()) == []  # no spool left


def test_a_file_above_the_part_size_goes_up_in_parts_encrypted_at_rest(
        tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    store = S3Store(bucket=s3_bucket, tmp_dir=tmp_path / "tmp", endpoint=s3_server.endpoint,
                    access_key="k", secret_key="s", sse="AES256", part_size_mb=5)
    content = b"%PDF-1.7\n" + bytes(range(256)) * (6 * MB // 256)  # 6 MB: two parts
    stored = store.put(io.BytesIO(content), max_bytes=10 * MB)
    assert stored.created and stored.sha256 == hashlib.sha256(content).hexdigest()
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=store.key_for(stored.sha256))
    assert head["ETag"].strip('"').endswith("-2")  # S3 marks a two-part upload so
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == len(content)
    chunks = list(store.iter_bytes(stored.sha256))
    assert len(chunks) > 1 and b"".join(chunks) == content  # streamed, not one read
    again = store.put(io.BytesIO(content), max_bytes=10 * MB)
    assert not again.created
    store.discard(again)  # not created by that put: nothing removed
    assert store.exists(stored.sha256)
    # nor by the put that created it: another host may have stored the same bytes at
    # the same moment and committed a document naming them (the sweeper removes it)
    store.discard(stored)
    assert store.exists(stored.sha256)


def test_the_sweep_leaves_other_softwares_multipart_uploads_alone(
        tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    store = S3Store(bucket=s3_bucket, tmp_dir=tmp_path / "tmp", endpoint=s3_server.endpoint,
                    access_key="k", secret_key="s")
    client = s3_server.client()
    ours = client.create_multipart_upload(Bucket=s3_bucket, Key="files/ab/cd/left-by-a-crash")
    theirs = client.create_multipart_upload(Bucket=s3_bucket, Key="other/backup.tar")
    assert store.sweep_temporary(cutoff=time.time() + 60)[0] == 1
    open_uploads = {u["UploadId"] for u in
                    client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])}
    assert open_uploads == {theirs["UploadId"]}
    assert ours["UploadId"] not in open_uploads


def test_caseforum_init_creates_the_missing_bucket(data_dir: Path, s3_server: S3Server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = "cf-made-by-init"
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    for key, value in storage_env(s3_server.endpoint, bucket).items():
        monkeypatch.setenv(key, value)
    first = CliRunner().invoke(cli, ["init"])
    assert first.exit_code == 0, first.output
    assert f"file store ready: bucket {bucket} created" in first.output
    s3_server.client().head_bucket(Bucket=bucket)  # raises when it is not there
    again = CliRunner().invoke(cli, ["init"])
    assert f"file store ready: bucket {bucket} is there" in again.output


def test_readyz_names_the_store_when_its_endpoint_is_down(data_dir: Path) -> None:
    server = start_s3_server()  # a server of its own, to stop
    try:
        server.client().create_bucket(Bucket="cf-ready")
        settings = load_settings(data_dir=data_dir, secret_key="s" * 32,
                                 storage=storage_settings(server.endpoint, "cf-ready"))
        with TestClient(create_app(settings)) as client:
            up = client.get("/readyz")
            assert up.status_code == 200 and up.json()["checks"]["storage"] == "ok"
            server.stop()
            down = client.get("/readyz")
    finally:
        server.stop()
    assert down.status_code == 503
    assert down.json()["failed"] == ["storage"]
    assert "EndpointConnectionError" in down.json()["checks"]["storage"]


def test_readyz_names_a_missing_bucket(data_dir: Path, s3_server: S3Server) -> None:
    settings = load_settings(data_dir=data_dir, secret_key="s" * 32,
                             storage=storage_settings(s3_server.endpoint, "cf-never-made"))
    with TestClient(create_app(settings)) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["failed"] == ["storage"]
    assert "404" in answer.json()["checks"]["storage"]


def test_the_sweep_removes_unused_objects_and_keeps_used_ones(
        s3_client: TestClient, us: dict[str, str], s3_app: Any, s3_server: S3Server,
        s3_bucket: str) -> None:
    used = pdf_bytes("kept: a document uses it")
    assert upload(s3_client, us, "US", "16123456", used).status_code == 201
    store = s3_app.state.store
    orphan = store.put(io.BytesIO(b"%PDF-1.7 stored, the row never committed"),
                       max_bytes=MB)
    young = sweep(s3_app.state.engine, store, min_age_seconds=3600)
    assert young.unreferenced == 0  # an upload in progress is never touched
    result = sweep(s3_app.state.engine, store, min_age_seconds=0, now=_later())
    assert result.unreferenced == 1
    sha = hashlib.sha256(used).hexdigest()
    assert object_keys(s3_server, s3_bucket) == [f"files/{sha[:2]}/{sha[2:4]}/{sha}"]
    assert not store.exists(orphan.sha256)


def _later() -> float:
    return time.time() + 5  # moto's LastModified has whole seconds


def test_settings_check_the_storage_section(data_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEFORUM_STORAGE__BACKEND", "s3")
    with pytest.raises(SettingsError, match="CASEFORUM_STORAGE: the s3 backend needs a "
                                            "bucket"):
        load_settings(data_dir=data_dir)
    monkeypatch.setenv("CASEFORUM_STORAGE__S3_BUCKET", "b")
    monkeypatch.setenv("CASEFORUM_STORAGE__S3_ENDPOINT", "minio:9000")
    with pytest.raises(SettingsError, match="S3_ENDPOINT: use an address such as"):
        load_settings(data_dir=data_dir)
    monkeypatch.setenv("CASEFORUM_STORAGE__S3_ENDPOINT", "http://127.0.0.1:9000/")
    monkeypatch.setenv("CASEFORUM_STORAGE__S3_SSE", "AES256")
    settings = load_settings(data_dir=data_dir)
    assert (settings.storage.backend, settings.storage.s3_endpoint, settings.storage.s3_sse) \
        == ("s3", "http://127.0.0.1:9000", "AES256")
    monkeypatch.setenv("CASEFORUM_STORAGE__BACKEND", "tape")
    with pytest.raises(SettingsError, match="no storage backend called 'tape' "
                                            r"\(available: local, s3\)"):
        open_store(load_settings(data_dir=data_dir))


def test_the_local_store_stays_the_default(settings: Settings, app: Any) -> None:
    assert settings.storage.backend == "local"
    assert isinstance(app.state.store, FileStore)
    assert app.state.store.root == settings.storage_dir
    with pytest.raises(StorageError, match="file too large: the limit is 1 MB"):
        app.state.store.put(io.BytesIO(b"%PDF-1.4\n" + b"0" * MB), max_bytes=MB)


class _Volume:
    """A backend a plugin adds: the local store in a folder of its own."""

    name = "volume"

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, settings: Settings) -> StorageBackend:
        return FileStore(self.root / "files", blob_root=self.root)


class _VolumePlugin:
    def __init__(self, root: Path) -> None:
        self.root = root

    @hookimpl
    def register_storage_backends(self) -> list[Any]:
        return [_Volume(self.root)]


def test_hook_register_storage_backends_lets_a_plugin_keep_the_files(
        data_dir: Path, tmp_path: Path) -> None:
    host = PluginHost()
    host.load(use_entry_points=False)
    host.add(_VolumePlugin(tmp_path / "volume"), name="volume_plugin")
    assert [f.name for f in host.storage_backends()] == ["volume", "local", "s3"]
    settings = load_settings(data_dir=data_dir, secret_key="s" * 32,
                             storage={"backend": "volume"})
    app = create_app(settings, plugins=host)
    store = app.state.store
    assert isinstance(store, StorageBackend)
    stored = store.put(io.BytesIO(b"plain text, kept on the volume"), max_bytes=MB)
    assert (tmp_path / "volume" / "files" / stored.sha256[:2] / stored.sha256[2:4]
            / stored.sha256).read_bytes() == b"plain text, kept on the volume"


def test_backup_takes_the_buckets_files_and_restore_puts_them_in_another_bucket(
        s3_client: TestClient, us: dict[str, str], s3_server: S3Server, s3_bucket: str,
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = pdf_bytes("Claim 1. Kept through a backup.")
    doc = upload(s3_client, us, "US", "16123456", content).json()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "d" * 32)
    for key, value in storage_env(s3_server.endpoint, s3_bucket).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    made = CliRunner().invoke(cli, ["backup", "archive.tar.gz"], catch_exceptions=False)
    assert made.exit_code == 0, made.output

    target = "cf-restored"
    s3_server.client().create_bucket(Bucket=target)
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(tmp_path / "restored"))
    monkeypatch.setenv("CASEFORUM_STORAGE__S3_BUCKET", target)
    put_back = CliRunner().invoke(cli, ["restore", "archive.tar.gz"], catch_exceptions=False)
    assert put_back.exit_code == 0, put_back.output
    # the bucket's files, and the ones the instance still had on disk (the demo's,
    # from before it used a bucket): a backup and restore moves an instance to S3
    on_disk = {"files/" + p.relative_to(data_dir / "files").as_posix()
               for p in (data_dir / "files").glob("??/??/*")}
    assert on_disk
    assert set(object_keys(s3_server, target)) \
        == set(object_keys(s3_server, s3_bucket)) | on_disk
    assert not list((tmp_path / "restored" / "files").rglob("*.pdf"))  # not on the disk
    assert not any(p.is_file() for p in (tmp_path / "restored" / "files").rglob("*")
                   if "tmp" not in p.parts)
    restored = load_settings()
    with TestClient(create_app(restored)) as client:
        from tests.dossier_helpers import token_for as token_again

        with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
            headers = token_again(session, "us.admin")
        got = client.get(f"/api/v1/documents/{doc['id']}/content", headers=headers)
    assert got.status_code == 200 and got.content == content
    again = CliRunner().invoke(cli, ["restore", "archive.tar.gz"])
    assert again.exit_code != 0 and "not empty" in again.output


def test_the_object_storage_examples_of_the_configuration_page_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    section = doc.split("## Object storage", 1)[1].split("\n## ", 1)[0]
    (toml_block,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    from_file = load_settings(data_dir=tmp_path, **tomllib.loads(toml_block))
    assert (from_file.storage.backend, from_file.storage.s3_sse) == ("s3", "AES256")
    (sh_block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    for line in sh_block.split():
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    from_env = load_settings(data_dir=tmp_path)
    assert (from_env.storage.s3_bucket, from_env.storage.s3_endpoint) \
        == ("caseforum-files", "https://s3.office.example")


def test_two_app_processes_given_the_same_environment_share_one_bucket(
        s3_env: dict[str, str], s3_server: S3Server, s3_bucket: str, data_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cross-host test relies on: the environment alone picks the bucket."""
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    first = open_store(load_settings(data_dir=data_dir / "host-a"))
    second = open_store(load_settings(data_dir=data_dir / "host-b"))
    stored = first.put(io.BytesIO(b"written on host a"), max_bytes=MB)
    assert b"".join(second.iter_bytes(stored.sha256)) == b"written on host a"
    assert object_keys(s3_server, s3_bucket) == ["files/" + "/".join(
        (stored.sha256[:2], stored.sha256[2:4], stored.sha256))]
