"""Feeds for office systems: /api/v1/changes (resumable, per viewer) and a family's
citation matrix as JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.app import create_app
from caseforum.models import Application, Event
from tests.dossier_helpers import pdf_bytes, token_for, upload


def poll(client: TestClient, headers: dict[str, str], after: int) -> tuple[list[dict], int]:
    """What an office system does: ask from its cursor until nothing is new."""
    items: list[dict] = []
    while True:
        answer = client.get("/api/v1/changes", params={"after": after, "limit": 7},
                            headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        if body["next"] == after:
            return items, after
        after = body["next"]


def jp_upload(client: TestClient, db: Any, **extra: Any) -> int:
    response = upload(client, token_for(db, "jp.admin"), "JP", "2019-041872",
                      pdf_bytes("A report"), date="2021-02-03", **extra)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_polling_across_a_server_restart_gets_each_new_document_once(settings, db) -> None:
    sg = token_for(db, "sg.examiner", "dossiers:read")
    cn = token_for(db, "cn.examiner", "dossiers:read")
    with TestClient(create_app(settings)) as client:
        history, sg_cursor = poll(client, sg, 0)
        assert any(i["kind"] == "document" for i in history)
        _, cn_cursor = poll(client, cn, 0)
        first = jp_upload(client, db)
        hidden = jp_upload(client, db, visibility="restricted", offices="CN")
        got, sg_cursor = poll(client, sg, sg_cursor)
        assert [i["document_id"] for i in got] == [first]
        assert got[0]["office"] == "JP" and got[0]["application_number"] == "2019-041872"
    with TestClient(create_app(settings)) as client:  # the server restarted
        second = jp_upload(client, db)
        got, sg_cursor = poll(client, sg, sg_cursor)
        assert [i["document_id"] for i in got] == [second]
        assert poll(client, sg, sg_cursor)[0] == []
        cn_got, _ = poll(client, cn, cn_cursor)
        assert [i["document_id"] for i in cn_got] == [first, hidden, second]


def test_a_cursor_older_than_the_log_is_told_to_start_again(client, db) -> None:
    cn = token_for(db, "cn.examiner", "dossiers:read")
    oldest = db.exec(select(Event.id).order_by(Event.id)).first()
    db.exec(Event.__table__.delete().where(Event.id <= oldest + 5))  # type: ignore[attr-defined]
    db.commit()
    gone = client.get("/api/v1/changes", params={"after": oldest}, headers=cn)
    assert gone.status_code == 410 and "after=0" in gone.json()["detail"]
    assert client.get("/api/v1/changes").status_code == 401
    forum_only = token_for(db, "cn.examiner", "forum")
    assert client.get("/api/v1/changes", headers=forum_only).status_code == 403


def test_family_citations_as_json_and_csv(client, db) -> None:
    cn = token_for(db, "cn.examiner", "dossiers:read")
    family_id = db.exec(select(Application.family_id).where(
        Application.office_code == "JP", Application.display_number == "2019-041872")).one()
    rows = client.get(f"/api/v1/families/{family_id}/citations", headers=cn)
    assert rows.status_code == 200, rows.text
    data = rows.json()
    assert data and {"cited", "kind_code", "category", "claims", "phase",
                     "citing_office"} <= set(data[0])
    assert {r["citing_office"] for r in data} >= {"JP", "CN"}
    # JP's search report is restricted to CN and KR: its citations are not SG's to see
    sg = token_for(db, "sg.examiner", "dossiers:read")
    sg_rows = client.get(f"/api/v1/families/{family_id}/citations", headers=sg).json()
    hidden = [r for r in data if r["citing_document_id"] not in
              {s["citing_document_id"] for s in sg_rows}]
    assert hidden and all(r["citing_office"] == "JP" for r in hidden)
    as_csv = client.get(f"/api/v1/families/{family_id}/citations?format=csv", headers=cn)
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(parsed) == len(data) and parsed[0]["cited"] == data[0]["cited"]
    assert client.get("/api/v1/families/999999/citations", headers=cn).status_code == 404
    bad = client.get(f"/api/v1/families/{family_id}/citations?format=xls", headers=cn)
    assert bad.status_code == 422
