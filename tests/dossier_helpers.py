"""Helpers that put dossiers in through the real API, as an office client would."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from fastapi.testclient import TestClient
from fpdf import FPDF
from sqlmodel import Session, select

from caseforum import accounts
from caseforum.models import User


def pdf_bytes(*lines: str) -> bytes:
    """A real PDF with a text layer."""
    doc = FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=11)
    for line in lines:
        doc.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(doc.output())


def token_for(db: Session, username: str, *scopes: str) -> dict[str, str]:
    user = db.exec(select(User).where(User.username == username)).one()
    _, plain = accounts.create_token(db, user=user,
                                     scopes=list(scopes) or ["dossiers:read", "dossiers:write"])
    db.commit()
    return {"Authorization": f"Bearer {plain}"}


def dossier_json(office: str, number: str, **extra: Any) -> dict[str, Any]:
    data = {
        "office": office, "application_number": number, "filing_date": "2018-09-28",
        "publication_number": extra.pop("publication_number", f"{office}2019123456A"),
        "publication_date": "2019-03-28", "title": extra.pop("title", "Layered fin heat exchanger"),
        "applicants": ["Example Industries Ltd."], "ipc": ["F28F 1/32"],
    }
    data.update(extra)
    return data


def upload(client: TestClient, headers: dict[str, str], office: str, number: str,
           content: bytes, *, code: str = "SRPT", visibility: str = "offices",
           offices: str = "", date: str = "2019-05-01", filename: str = "report.pdf",
           extra_headers: dict[str, str] | None = None) -> Any:
    return client.post(
        f"/api/v1/dossiers/{office}/{number}/documents",
        headers={**headers, **(extra_headers or {})},
        data={"code": code, "date": date, "language": "en", "visibility": visibility,
              "offices": offices},
        files={"file": (filename, content, "application/pdf")},
    )


def package_bytes(manifest: dict[str, Any], files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def new_dossier(client: TestClient, headers: dict[str, str], office: str, number: str,
                **extra: Any) -> dict[str, Any]:
    """Create a dossier through the API (it must be new); returns the answer."""
    made = client.post("/api/v1/dossiers", headers=headers,
                       json=dossier_json(office, number, **extra))
    assert made.status_code == 201, made.text
    return dict(made.json())
