"""Two CaseForum instances on loopback: B holds KR's dossiers and serves them live to A
(``caseforum sources add``); A caches them and applies KR's visibility choices."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from tests.conftest import LiveServer, login
from tests.dossier_helpers import dossier_json, pdf_bytes, upload

KR_NUMBER = "10-2021-0054321"
KR_KEY = "1020210054321"


def _instance_dir(root: Path, template_db: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    shutil.copy(template_db, folder / "caseforum.db")
    shutil.copytree(template_db.parent / "files", folder / "files")
    return folder


def _kr_provider_token(engine) -> tuple[str, str]:
    """A KR office account on B and its tokens: (read and write, read only)."""
    with open_session(engine) as session:
        user = accounts.create_user(session, username="kr.provider", office_code="KR",
                                    role="office_admin", password=None)
        _, write = accounts.create_token(session, user=user,
                                         scopes=["dossiers:read", "dossiers:write"])
        _, read = accounts.create_token(session, user=user, scopes=["dossiers:read"])
        session.commit()
    return write, read


def test_b_serves_kr_dossiers_live_to_a(tmp_path: Path, template_db: Path) -> None:
    b_dir = _instance_dir(tmp_path, template_db, "b")
    b_settings = load_settings(data_dir=b_dir, secret_key="b" * 32, plugins={})
    b_engine = make_engine(b_settings)
    write, read = _kr_provider_token(b_engine)
    b_app = create_app(b_settings)
    server = LiveServer(b_app).start()
    try:
        provider = {"Authorization": f"Bearer {write}"}
        with TestClient(b_app) as b:
            assert b.post("/api/v1/dossiers", headers=provider, json=dossier_json(
                "KR", KR_NUMBER, publication_number="KR 10-2022-0012345 A",
                title="Battery tab welding")).status_code == 201
            assert upload(b, provider, "KR", KR_KEY, pdf_bytes("Search report for all."),
                          code="SRPT").status_code == 201
            assert upload(b, provider, "KR", KR_KEY, pdf_bytes("Opinion for JP only."),
                          code="CTNF", visibility="restricted", offices="JP"
                          ).status_code == 201
            original = 0  # the KR claims and their English translation: a pair
            for language in ("ko", "en"):
                sent = b.post(f"/api/v1/dossiers/KR/{KR_KEY}/documents", headers=provider,
                              data={"code": "CLM", "date": "2019-05-02", "language": language,
                                    "translation_of": str(original or "")},
                              files={"file": ("c.pdf", pdf_bytes(f"Claims ({language})"),
                                              "application/pdf")})
                assert sent.status_code == 201, sent.text
                original = original or sent.json()["id"]

        a_dir = _instance_dir(tmp_path, template_db, "a")
        token_file = tmp_path / "kr-token"
        token_file.write_text(read + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        env.update(CASEFORUM_DATA_DIR=str(a_dir), CASEFORUM_SECRET_KEY="a" * 32)
        added = subprocess.run(
            [str(Path(sys.executable).parent / "caseforum"), "sources", "add", "--office",
             "KR", "--url", server.url, "--token-file", str(token_file)],
            env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        assert "KR dossiers will be read from" in added.stdout

        a_app = create_app(load_settings(data_dir=a_dir, secret_key="a" * 32, plugins={}))
        with TestClient(a_app) as a:
            login(a, "cn.examiner")
            page = a.get("/dossiers", params={"q": f"KR {KR_NUMBER}"})
            assert page.status_code == 200 and "Battery tab welding" in page.text
            assert "From KR dossiers at 127.0.0.1" in page.text
            cn_view = a.get(f"/api/v1/dossiers/KR/{KR_KEY}").json()
            assert cn_view["source"] == "peer_kr"
            # not the JP-only one; the pair arrives as a pair
            assert [d["code"] for d in cn_view["documents"]] == ["SRPT", "CLM", "CLM"]
            ko, en = cn_view["documents"][1:]
            assert (ko["language"], ko["translations"], en["translation_of"]) == \
                ("ko", [en["id"]], ko["id"])
            report = a.get(f"/api/v1/documents/{cn_view['documents'][0]['id']}/content")
            assert report.status_code == 200 and report.content.startswith(b"%PDF-")

            login(a, "jp.examiner")
            jp_view = a.get(f"/api/v1/dossiers/KR/{KR_KEY}").json()
            assert sorted(d["code"] for d in jp_view["documents"]) == \
                ["CLM", "CLM", "CTNF", "SRPT"]
            restricted = next(d for d in jp_view["documents"] if d["code"] == "CTNF")
            assert restricted["visibility"] == "restricted" and restricted["offices"] == ["JP"]

            login(a, "admin")
            admin = a.get("/admin/plugins").text
        row = admin[admin.index('id="source-peer_kr"'):]
        assert ">ok<" in row[:row.index("</tr>")]
    finally:
        server.stop()
        b_app.state.engine.dispose()
        b_engine.dispose()
