"""The OPD copies of remote documents kept in an S3-compatible bucket: the first view
fetches the bytes from the OPD (the reference server) into the bucket, the next one
reads them from there (``moto_server`` on loopback, tests/s3_helpers.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from caseforum.app import create_app
from caseforum.config import Settings
from tests.conftest import login
from tests.s3_helpers import S3Server, object_keys, storage_settings

from .conftest import Reference
from .test_opd_link import ISSUE_PDF, _doc_id


def test_an_opd_document_is_kept_in_the_bucket_after_its_first_view(
        settings: Settings, reference: Reference, s3_server: S3Server,
        s3_bucket: str, data_dir: Path) -> None:
    opd = {"base_url": reference.url, "timeout_seconds": 0.5, "retries": 1,
           "backoff_seconds": 0.01}
    app = create_app(settings.model_copy(update={
        "plugins": {"opd_link": opd},
        "storage": type(settings.storage)(**storage_settings(s3_server.endpoint, s3_bucket))}))
    pdf = ISSUE_PDF.read_bytes()
    sha = hashlib.sha256(pdf).hexdigest()
    on_disk = sorted((data_dir / "files").glob("??/??/*"))
    with TestClient(app) as client:
        login(client, "kr.examiner")
        body = client.get("/api/v1/dossiers/US/16123456").json()
        doc_id = _doc_id(body, "ISSUE.NTF")
        assert object_keys(s3_server, s3_bucket) == []  # nothing fetched before a view
        first = client.get(f"/api/v1/documents/{doc_id}/content")
        assert first.status_code == 200 and first.content == pdf
        assert object_keys(s3_server, s3_bucket) == [f"files/{sha[:2]}/{sha[2:4]}/{sha}"]
        fetched = reference.requests
        again = client.get(f"/documents/{doc_id}/content")
        assert again.content == pdf and reference.requests == fetched  # from the bucket
    assert sorted((data_dir / "files").glob("??/??/*")) == on_disk  # nothing new on disk
