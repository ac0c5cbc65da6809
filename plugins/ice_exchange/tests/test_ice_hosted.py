"""Both offices on one instance (the ``hosted`` route), through pages and the API,
and who may see what."""

from __future__ import annotations

import re
from typing import Any

import pytest
from caseforum_ice_exchange import audit
from caseforum_ice_exchange.models import IceAuditEntry, IceExchange, IceParcel
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import accounts
from caseforum.app import create_app
from caseforum.config import load_settings
from caseforum.db import make_engine, open_session
from caseforum.models import User
from tests.conftest import csrf_of, login

from .conftest import take_part

CLAIMS = b"1. A lamp comprising a solar cell.\n" * 20
REPORT = b"Search report\nCategory X: JP 2010-123456 A, claims 1-3\n"


@pytest.fixture
def users(hosted_app: Any, as_user: Any):
    """Logged-in clients of the ICE instance by user name, with their CSRF tokens."""
    return lambda username: as_user(username, on=hosted_app)


def open_request(client: TestClient, csrf: str, **extra: Any) -> str:
    response = client.post("/ice/new", data={
        "csrf_token": csrf, "donor_office": "JP", "application": "JP 2017-187096",
        "kind": "search", "due_date": "2099-03-01", "message": "Claims 1-3, please.", **extra,
    }, files=[("file", ("claims.txt", CLAIMS, "text/plain"))], follow_redirects=False)
    assert response.status_code == 303, response.text
    match = re.match(r"^/ice/([0-9a-f-]{36})\?done=request$", response.headers["location"])
    assert match
    return match.group(1)


def step(client: TestClient, csrf: str, exchange_id: str, kind: str, message: str = "",
         files: list[Any] | None = None) -> Any:
    return client.post(f"/ice/{exchange_id}/steps", data={
        "csrf_token": csrf, "kind": kind, "message": message}, files=files or [],
        follow_redirects=False)


def test_full_exchange_on_one_instance_through_the_pages(users, hosted_settings) -> None:
    sg, sg_csrf = users("sg.examiner")
    jp, jp_csrf = users("jp.examiner")

    exchange_id = open_request(sg, sg_csrf)
    page = sg.get(f"/ice/{exchange_id}?done=request").text
    assert "Request sent." in page
    assert 'aria-current="step"' in page and "Requested" in page
    assert "✓ signature" in page and "✓ receipt" in page  # hosted: verified at once

    listing = jp.get("/ice?show=waiting").text
    assert f"/ice/{exchange_id}" in listing and "your move" in listing
    page = jp.get(f"/ice/{exchange_id}").text
    assert "Claims 1-3, please." in page
    claims_link = re.search(r'href="(/api/v1/ice/parcels/[^"]+/files/claims.txt)"', page)
    assert claims_link and jp.get(claims_link.group(1)).content == CLAIMS

    assert step(jp, jp_csrf, exchange_id, "accept").status_code == 303
    assert step(jp, jp_csrf, exchange_id, "start").status_code == 303
    refused = step(jp, jp_csrf, exchange_id, "report", "here")  # no file
    assert refused.status_code == 422 and "attach at least one document" in refused.text
    sent = step(jp, jp_csrf, exchange_id, "report", "Report attached.",
                files=[("file", ("report.txt", REPORT, "text/plain"))])
    assert sent.status_code == 303

    page = sg.get(f"/ice/{exchange_id}").text
    assert "Report delivered" in page and "Report attached." in page
    link = re.search(r'href="(/api/v1/ice/parcels/[^"]+/files/report.txt)"', page)
    assert link
    assert sg.get(link.group(1)).content == REPORT
    assert step(sg, sg_csrf, exchange_id, "acknowledge").status_code == 303
    assert step(sg, sg_csrf, exchange_id, "close", "Thank you.").status_code == 303

    engine = make_engine(hosted_settings)
    with open_session(engine) as session:
        exchange = session.get(IceExchange, exchange_id)
        parcels = session.exec(select(IceParcel).where(IceParcel.exchange_id == exchange_id)
                               ).all()
        assert exchange.status == "closed"
        assert [p.kind for p in sorted(parcels, key=lambda p: p.created_at)] == [
            "request", "accept", "start", "report", "acknowledge", "close"]
        assert all(p.status == "delivered" and p.receipt and p.verified_at for p in parcels)
        chains = {e.chain for e in session.exec(
            select(IceAuditEntry).where(IceAuditEntry.exchange_id == exchange_id))}
        assert {"SG", "JP"} <= chains  # each office records its own side
        assert all(r.ok for r in audit.verify_all(session))
    engine.dispose()


def test_the_request_form_keeps_input_and_explains_errors(users) -> None:
    sg, csrf = users("sg.examiner")
    form = sg.get("/ice/new").text
    for label in ('for="donor_office"', 'for="application"', 'for="kind"', 'for="due_date"',
                  'for="message"', 'for="files"'):
        assert label in form
    response = sg.post("/ice/new", data={"csrf_token": csrf, "donor_office": "JP",
                                         "application": "JP 12", "kind": "search",
                                         "message": "keep me"})
    assert response.status_code == 422
    assert "too short for a JP application number" in response.text
    assert "keep me" in response.text
    assert sg.post("/ice/new", data={"csrf_token": csrf, "donor_office": "JP",
                                     "application": "JP 2017-187096", "kind": "search",
                                     "due_date": "2001-01-01"}).status_code == 422
    assert sg.post("/ice/new", data={"csrf_token": csrf, "donor_office": "CN",
                                     "application": "JP 2017-187096", "kind": "search"}
                   ).status_code == 422  # CN is not a donor office
    assert sg.post("/ice/new", data={"donor_office": "JP"}).status_code == 403  # no CSRF


def test_an_office_that_is_not_a_recipient_cannot_open_requests(users) -> None:
    au, csrf = users("au.examiner")  # AU is a donor only
    assert "does not take part in ICE as a recipient" in au.get("/ice/new").text
    response = au.post("/api/v1/ice/exchanges", json={
        "donor_office": "JP", "application": "JP 2017-187096", "kind": "search"},
        headers={"X-CSRF-Token": csrf})
    assert response.status_code == 403


def test_only_the_two_offices_see_content_and_the_platform_admin_sees_state(users) -> None:
    sg, sg_csrf = users("sg.examiner")
    exchange_id = open_request(sg, sg_csrf)
    data = sg.get(f"/api/v1/ice/exchanges/{exchange_id}").json()
    file_url = data["parcels"][0]["files"][0]["url"]

    kr, _ = users("kr.examiner")
    assert kr.get(f"/ice/{exchange_id}").status_code == 404
    assert kr.get(f"/api/v1/ice/exchanges/{exchange_id}").status_code == 404
    assert kr.get(file_url).status_code == 404
    assert exchange_id not in kr.get("/api/v1/ice/exchanges").text
    assert exchange_id not in kr.get("/ice?show=all").text

    admin, _ = users("admin")
    state = admin.get(f"/api/v1/ice/exchanges/{exchange_id}").json()
    assert state["status"] == "requested" and state["content_visible"] is False
    for secret in ("application", "kind", "due_date", "requested_by"):
        assert secret not in state
    assert all("files" not in p and "message" not in p for p in state["parcels"])
    page = admin.get(f"/ice/{exchange_id}").text
    assert "2017-187096" not in page and "Claims 1-3" not in page and "claims.txt" not in page
    assert "visible only to SG and JP" in page
    assert admin.get(file_url).status_code == 404
    listed = admin.get("/api/v1/ice/exchanges?show=all").json()
    assert [e["id"] for e in listed] == [exchange_id] and "application" not in listed[0]
    assert admin.get(f"/api/v1/ice/exchanges/{exchange_id}/audit").status_code == 404

    jp, _ = users("jp.examiner")
    assert jp.get(file_url).content == CLAIMS


def test_wrong_side_and_wrong_state_steps_are_refused(users) -> None:
    sg, sg_csrf = users("sg.examiner")
    exchange_id = open_request(sg, sg_csrf)
    headers = {"X-CSRF-Token": sg_csrf}
    url = f"/api/v1/ice/exchanges/{exchange_id}/parcels"
    accept = sg.post(url, json={"kind": "accept"}, headers=headers)
    assert accept.status_code == 409 and "donor office" in accept.json()["detail"]
    ack = sg.post(url, json={"kind": "acknowledge"}, headers=headers)
    assert ack.status_code == 409 and ack.json()["code"] == "invalid_transition"
    assert sg.post(url, json={"kind": "nonsense"}, headers=headers).status_code == 422
    assert sg.post(url, content=b"[1,2]", headers={**headers, "Content-Type":
                                                   "application/json"}).status_code == 400
    jp, jp_csrf = users("jp.examiner")
    decline = jp.post(url, json={"kind": "decline"}, headers={"X-CSRF-Token": jp_csrf})
    assert decline.status_code == 422 and decline.json()["code"] == "note_required"


def test_assignment_by_office_admin_and_self(users) -> None:
    sg, sg_csrf = users("sg.examiner")
    exchange_id = open_request(sg, sg_csrf)
    jp_admin, admin_csrf = users("jp.admin")
    url = f"/api/v1/ice/exchanges/{exchange_id}/assign"
    done = jp_admin.post(url, json={"assignee": "jp.examiner"},
                         headers={"X-CSRF-Token": admin_csrf})
    assert done.status_code == 200, done.text
    assert "Examiner Sato" in jp_admin.get(f"/ice/{exchange_id}").text
    assert jp_admin.post(url, json={"assignee": "sg.examiner"},
                         headers={"X-CSRF-Token": admin_csrf}).status_code == 422
    other = sg.post(url, json={"assignee": "jp.examiner"}, headers={"X-CSRF-Token": sg_csrf})
    assert other.status_code == 422  # not a user of SG
    mine = sg.post(f"/ice/{exchange_id}/assign", data={"csrf_token": sg_csrf,
                                                       "assignee": "sg.examiner"},
                   follow_redirects=False)
    assert mine.status_code == 303


def test_api_tokens_need_the_ice_scope(hosted_app, hosted_settings) -> None:
    engine = make_engine(hosted_settings)
    with open_session(engine) as session:
        user = session.exec(select(User).where(User.username == "sg.examiner")).one()
        _, forum_only = accounts.create_token(session, user=user, scopes=["forum"],
                                              expires_days=1)
        _, ice = accounts.create_token(session, user=user, scopes=["ice"], expires_days=1)
        session.commit()
    engine.dispose()
    with TestClient(hosted_app) as client:
        assert client.get("/api/v1/ice/exchanges", headers={
            "Authorization": f"Bearer {forum_only}"}).status_code == 403
        response = client.post("/api/v1/ice/exchanges", headers={
            "Authorization": f"Bearer {ice}"}, json={
            "donor_office": "JP", "application": "JP 2017-187096", "kind": "written_opinion"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["parcels"][0]["status"] == "delivered"
        assert body["route"] == "hosted"


def test_pages_have_no_inline_script_or_style_and_are_labelled(users) -> None:
    sg, sg_csrf = users("sg.examiner")
    exchange_id = open_request(sg, sg_csrf)
    for path in ("/ice", "/ice/new", f"/ice/{exchange_id}"):
        html = sg.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert " style=" not in html, path
        assert "<h1>" in html or "<h1" in html
    assert '<a href="/ice"' in sg.get("/").text  # menu entry "Exchanges"
    assert csrf_of(sg.get("/ice").text)


def test_bad_api_input_is_a_clear_4xx_never_a_500(users) -> None:
    sg, csrf = users("sg.examiner")
    headers = {"X-CSRF-Token": csrf}
    cases = [
        ({"donor_office": "JP", "application": None, "kind": "search"}, 422, "bad_application"),
        ({"donor_office": ["JP"], "application": "JP 2017-187096", "kind": "search"}, 422,
         "unknown_office"),
        ({"donor_office": "JP", "application": "JP 2017-187096", "kind": "poetry"}, 422,
         "bad_kind"),
        ({"donor_office": "JP", "application": "JP 2017-187096", "kind": "search",
          "due_date": "31/12/2099"}, 422, "bad_due_date"),
        ({"donor_office": "JP", "application": "JP 2017-187096", "kind": "search",
          "route": "pigeon"}, 422, "unknown_route"),
        ({"donor_office": "SG", "application": "JP 2017-187096", "kind": "search"}, 422,
         "same_office"),
        ({"donor_office": "CN", "application": "JP 2017-187096", "kind": "search"}, 422,
         "not_donor"),
    ]
    for body, status, code in cases:
        response = sg.post("/api/v1/ice/exchanges", json=body, headers=headers)
        assert (response.status_code, response.json().get("code")) == (status, code), \
            (body, response.text)
    assert sg.post("/api/v1/ice/exchanges", content=b"\xff", headers={
        **headers, "Content-Type": "application/json"}).status_code == 400
    assert sg.get("/api/v1/ice/exchanges/" + "x" * 500).status_code == 404
    assert sg.get("/api/v1/ice/exchanges?show=everything").status_code == 422
    assert sg.get("/api/v1/ice/parcels/nope/files/x.pdf").status_code == 404
    assert sg.get("/ice/not-an-exchange").status_code == 404


def test_oversize_uploads_are_refused_and_leave_nothing(data_dir) -> None:
    settings = load_settings(data_dir=data_dir, secret_key="o" * 32,
                             plugins={"ice_exchange": {"max_parcel_mb": 1}})
    engine = make_engine(settings)
    take_part(engine, "o" * 32, {"SG": "recipient", "JP": "both"})
    with TestClient(create_app(settings)) as client:
        csrf = login(client, "sg.examiner")
        big = b"\0" * (1024 * 1024 + 10)
        # declared too big: refused before the body is read
        response = client.post("/api/v1/ice/exchanges", headers={"X-CSRF-Token": csrf}, data={
            "donor_office": "JP", "application": "JP 2017-187096", "kind": "search"},
            files=[("file", ("a.bin", big * 2, "application/octet-stream"))])
        assert response.status_code == 413 and response.json()["code"] == "oversize"
        # two files each under the limit, together over it: stopped while encrypting
        response = client.post("/api/v1/ice/exchanges", headers={"X-CSRF-Token": csrf}, data={
            "donor_office": "JP", "application": "JP 2017-187096", "kind": "search"},
            files=[("file", ("a.bin", big[:700_000], "application/octet-stream")),
                   ("file", ("b.bin", big[:700_000], "application/octet-stream"))])
        assert response.status_code == 413, response.text
    with open_session(engine) as session:
        assert session.exec(select(IceParcel)).all() == []
        assert session.exec(select(IceExchange)).all() == []
    assert not list((data_dir / "ice" / "parcels").glob("*/*"))
    engine.dispose()


# (C0 controls cannot be sent: the HTTP client percent-encodes them in the part header;
# the inbox tests send them in a manifest)
@pytest.mark.parametrize("name", ["claims\u202etxt.exe", "\u2066claims.txt", "claims\u200e.txt",
                                  "claims\x9b.txt"])
def test_uploads_with_control_or_bidi_names_are_refused_and_audited(users, hosted_settings,
                                                                    name) -> None:
    sg, csrf = users("sg.examiner")
    response = sg.post("/api/v1/ice/exchanges", headers={"X-CSRF-Token": csrf}, data={
        "donor_office": "JP", "application": "JP 2017-187096", "kind": "search"},
        files=[("file", (name, CLAIMS, "text/plain"))])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "bad_file_name"
    assert "control or bidi characters (U+" in body["detail"]
    engine = make_engine(hosted_settings)
    with open_session(engine) as session:
        assert session.exec(select(IceExchange)).all() == []
        assert session.exec(select(IceParcel)).all() == []
        entry = session.exec(select(IceAuditEntry).where(
            IceAuditEntry.action == "upload.refused")).one()
        assert entry.chain == "SG" and entry.detail.startswith("bad_file_name: ")
        assert all(report.ok for report in audit.verify_all(session))
    engine.dispose()
    assert not list((hosted_settings.data_dir / "ice" / "parcels").glob("*/*"))


def test_a_step_with_a_bidi_file_name_is_refused_too(users) -> None:
    sg, sg_csrf = users("sg.examiner")
    exchange_id = open_request(sg, sg_csrf)
    jp, jp_csrf = users("jp.examiner")
    assert step(jp, jp_csrf, exchange_id, "accept").status_code == 303
    refused = jp.post(f"/api/v1/ice/exchanges/{exchange_id}/parcels",
                      headers={"X-CSRF-Token": jp_csrf}, data={"kind": "report"},
                      files=[("file", ("report\u202efdp.exe", REPORT, "text/plain"))])
    assert refused.status_code == 422 and refused.json()["code"] == "bad_file_name"
    audit_trail = jp.get(f"/api/v1/ice/exchanges/{exchange_id}/audit").text
    assert "upload.refused" in audit_trail
