"""The public portal: an office's switch decides what visitors see, everywhere at once;
the switch is dated and audited; member-only links ask visitors to log in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum.config import Settings
from caseforum.db import make_engine, open_session
from caseforum.events import AccountAuditConsumer, process_pending
from caseforum.models import AccountAudit, Category, Office, Thread, User
from caseforum.offices import add_office
from caseforum.plugin_host import PluginHost
from caseforum.setup_db import DEMO_PUBLIC_OFFICES, init_database
from tests.dossier_helpers import token_for
from tests.forum_helpers import make_category, start_thread
from tests.test_dossier_access import JP_NUMBER, jp_dossier  # noqa: F401  (fixture)

DOSSIER = f"/dossiers/JP/{JP_NUMBER}"


def switch(client: TestClient, csrf: str, office: str, on: bool) -> Any:
    return client.post(f"/admin/offices/{office}/public-access",
                       data={"csrf_token": csrf, "public_access": "true" if on else "false"},
                       follow_redirects=False)


def what_a_visitor_gets(app: Any, docs: dict[str, Any]) -> dict[str, Any]:
    """Every way a visitor could reach the JP dossier and each of its documents."""
    visitor = TestClient(app)
    out: dict[str, Any] = {
        "page": visitor.get(DOSSIER).status_code,
        "api": visitor.get(f"/api/v1/dossiers/JP/{JP_NUMBER}").status_code,
        "timeline": visitor.get(f"{DOSSIER}/timeline").status_code,
        "lookup": visitor.get("/dossiers", params={"q": f"JP {JP_NUMBER}"},
                              follow_redirects=False).status_code,
        "landing": visitor.get("/").text,
    }
    for visibility, doc in docs.items():
        out[visibility] = {path: visitor.get(path.format(id=doc["id"])).status_code
                           for path in ("/documents/{id}", "/documents/{id}/download",
                                        "/documents/{id}/content", "/documents/{id}/print",
                                        "/api/v1/documents/{id}",
                                        "/api/v1/documents/{id}/content")}
    return out


def test_public_access_is_off_until_an_office_decides(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path, secret_key="k" * 32))
    host = PluginHost()
    host.load()
    init_database(engine, host, create_if_empty=True)
    with open_session(engine) as session:
        assert not [o.code for o in session.exec(select(Office)) if o.public_access]
        added = add_office(session, code="BN", name="Brunei IP Office", roles=["providing"])
        session.commit()
        assert added.public_access is False and added.public_access_changed_at is None
    engine.dispose()


def test_demo_opens_only_its_chosen_offices_and_says_who_did(db) -> None:
    public = {o.code: o for o in db.exec(select(Office)) if o.public_access}
    assert set(public) == set(DEMO_PUBLIC_OFFICES) == {"IB", "JP"}
    assert all(o.public_access_changed_by == "demo set-up" and o.public_access_changed_at
               for o in public.values())


def test_switching_off_ends_visitor_access_everywhere_at_once(
        app, db, as_user, jp_dossier) -> None:  # noqa: F811
    before = what_a_visitor_gets(app, jp_dossier)  # also fills this process's office cache
    assert before["page"] == before["api"] == before["timeline"] == 200
    assert before["lookup"] == 303  # the number box goes straight to the dossier
    assert set(before["public"].values()) == {200}
    for hidden in ("offices", "restricted"):  # office-only and named-office documents: never
        assert set(before[hidden].values()) == {404}, hidden
    assert "Japan Patent Office" in before["landing"]

    admin, csrf = as_user("jp.admin")
    assert switch(admin, csrf, "JP", False).status_code == 303
    after = what_a_visitor_gets(app, jp_dossier)
    assert after["page"] == after["api"] == after["timeline"] == after["lookup"] == 404
    for visibility in ("public", "offices", "restricted"):
        assert set(after[visibility].values()) == {404}, visibility
    assert "Japan Patent Office" not in after["landing"]
    # members are not affected: they never depended on the switch
    examiner, _ = as_user("cn.examiner")
    assert examiner.get(f"/documents/{jp_dossier['public']['id']}").status_code == 200

    assert switch(admin, csrf, "JP", True).status_code == 303
    again = what_a_visitor_gets(app, jp_dossier)
    assert again["page"] == again["api"] == 200
    assert again["public"]["/documents/{id}/download"] == 200
    assert again["public"]["/api/v1/documents/{id}"] == 200
    for hidden in ("offices", "restricted"):
        assert set(again[hidden].values()) == {404}, hidden
    listed = TestClient(app).get(f"/api/v1/dossiers/JP/{JP_NUMBER}").json()
    assert {d["visibility"] for d in listed["documents"]} == {"public"}


def test_the_visitor_sees_public_documents_and_their_citations_only(
        app, db, jp_dossier) -> None:  # noqa: F811
    headers = token_for(db, "jp.examiner")
    member = TestClient(app)
    # a citation entered for the dossier as a whole, not taken from a public document
    made = member.post(f"/api/v1/dossiers/JP/{JP_NUMBER}/citations", headers=headers,
                       json={"cited": "dossier-wide-citation", "category": "A",
                             "claims": "1", "phase": "search"})
    assert made.status_code == 201, made.text
    page = TestClient(app).get(DOSSIER).text
    assert f'/documents/{jp_dossier["public"]["id"]}"' in page
    assert "citation-from-public-report" in page
    for hidden in ("citation-from-offices-opinion", "citation-from-secret-for-korea",
                   "dossier-wide-citation", f'/documents/{jp_dossier["offices"]["id"]}"'):
        assert hidden not in page
    assert "Public view" in page and f"/login?next={DOSSIER}" in page
    api = TestClient(app).get(f"/api/v1/dossiers/JP/{JP_NUMBER}").json()
    assert {c["cited"] for c in api["citations"]} == {"citation-from-public-report"}
    # a member of an accessing office still gets the dossier-wide citation
    kr = TestClient(app).get(f"/api/v1/dossiers/JP/{JP_NUMBER}",
                             headers=token_for(db, "kr.examiner", "dossiers:read")).json()
    assert "dossier-wide-citation" in {c["cited"] for c in kr["citations"]}


def test_only_the_offices_admins_and_the_platform_admin_switch(as_user, db) -> None:
    examiner, csrf = as_user("jp.examiner")
    assert switch(examiner, csrf, "JP", False).status_code == 403
    us_admin, csrf = as_user("us.admin")
    assert switch(us_admin, csrf, "JP", False).status_code == 403
    assert switch(us_admin, csrf, "US", True).status_code == 303
    admin, csrf = as_user("admin")
    assert switch(admin, csrf, "KR", True).status_code == 303
    db.expire_all()
    assert db.get(Office, "JP").public_access is True
    assert db.get(Office, "US").public_access_changed_by == "us.admin"
    assert db.get(Office, "KR").public_access_changed_by == "admin"
    anonymous = TestClient(admin.app)
    assert anonymous.post("/admin/offices/JP/public-access",
                          data={"public_access": "false"}).status_code in (401, 403)


def test_the_switch_is_dated_and_in_the_history(app, as_user, db, engine) -> None:
    admin, csrf = as_user("jp.admin")
    answer = switch(admin, csrf, "JP", False)
    assert "Public access of JP switched off" in admin.get(answer.headers["location"]).text
    again = switch(admin, csrf, "JP", False).headers["location"]
    assert "Public access of JP was already off" in admin.get(again).text
    db.expire_all()
    jp = db.get(Office, "JP")
    assert jp.public_access_changed_by == "jp.admin" and jp.public_access_changed_at
    page = admin.get("/admin/offices").text
    assert "by jp.admin" in page and "Switch on" in page

    process_pending(AccountAuditConsumer(), engine)
    actor = db.exec(select(User).where(User.username == "jp.admin")).one()
    rows = db.exec(select(AccountAudit).where(AccountAudit.kind == "office.public_access",
                                              AccountAudit.actor_id.is_not(None))).all()
    assert [(r.office_code, r.actor_id, r.detail) for r in rows] == [
        ("JP", actor.id, "JP public access off (by jp.admin)")]  # the repeat changed nothing
    history = admin.get("/admin/audit").text
    assert "JP public access off (by jp.admin)" in history
    # another office's admin does not see JP's decisions; the platform admin does
    us_admin, _ = as_user("us.admin")
    assert "JP public access off" not in us_admin.get("/admin/audit").text
    platform, _ = as_user("admin")
    assert "JP public access off" in platform.get("/admin/audit").text


def test_the_command_line_switch_is_dated_and_audited_too(db, engine) -> None:
    from caseforum.offices import set_roles

    set_roles(db, code="CN", roles=None, public_access=True)
    db.commit()
    process_pending(AccountAuditConsumer(), engine)
    db.expire_all()
    assert db.get(Office, "CN").public_access_changed_by == "command line"
    row = db.exec(select(AccountAudit).where(AccountAudit.office_code == "CN",
                                             AccountAudit.kind == "office.public_access")).one()
    assert row.detail == "CN public access on (by command line)"


def test_landing_page_explains_and_offers_the_number_box(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "patent offices share" in text and "marked <em>public</em>" in text
    assert 'action="/dossiers"' in text and 'role="search"' in text
    assert "International Bureau of WIPO" in text and "Japan Patent Office" in text
    assert "China National Intellectual Property Administration" not in text
    # the latest dossiers listed are those of open offices only
    assert "/dossiers/JP/" in text and "/dossiers/CN/" not in text
    found = client.get("/dossiers", params={"q": "JP 2019-041872"}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == "/dossiers/JP/2019041872"
    closed = client.get("/dossiers", params={"q": "CN 202080019375.4"})
    assert closed.status_code == 404  # CN has not opened its files to the public


def test_landing_page_when_no_office_is_open(client: TestClient, db) -> None:
    for office in db.exec(select(Office)):
        office.public_access = False
        db.add(office)
    db.commit()
    text = client.get("/").text
    assert "No office shares its files with the public" in text
    assert "Recently updated public dossiers" not in text


def _thread(db, as_user) -> int:
    jp, csrf = as_user("jp.examiner")
    return start_thread(jp, csrf, make_category(db, "Members only", ["JP"]), "Claims 1-3",
                        "Shall we compare the X documents?")


def test_a_thread_link_asks_a_visitor_to_log_in_and_leads_back(app, db, as_user) -> None:
    thread_id = _thread(db, as_user)
    visitor = TestClient(app)
    answer = visitor.get(f"/threads/{thread_id}?page=2", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=/threads/{thread_id}%3Fpage%3D2"
    form = visitor.get(answer.headers["location"])
    assert "you will be taken back to" in form.text
    # a thread that does not exist answers the same: visitors learn nothing
    missing = visitor.get("/threads/999999", follow_redirects=False)
    assert missing.headers["location"] == "/login?next=/threads/999999"
    for path in ("/forum", f"/forum/c/{db.exec(select(Category)).first().id}", "/notifications"):
        assert visitor.get(path, follow_redirects=False).headers["location"].startswith(
            "/login?next=")
    # htmx asks for a fragment: the browser is sent to the log-in page as a whole
    htmx = visitor.get(f"/threads/{thread_id}", headers={
        "HX-Request": "true", "HX-Current-URL": f"http://testserver/threads/{thread_id}"})
    assert htmx.headers["hx-redirect"] == f"/login?next=/threads/{thread_id}"
    # the API says 401, not 404
    assert visitor.get(f"/api/v1/threads/{thread_id}").status_code == 401

    from tests.conftest import csrf_of

    done = visitor.post("/login", data={
        "username": "jp.examiner", "password": "caseforum-demo",
        "csrf_token": csrf_of(form.text), "next": f"/threads/{thread_id}"},
        follow_redirects=False)
    assert done.headers["location"] == f"/threads/{thread_id}"
    landed = visitor.get(done.headers["location"])
    assert landed.status_code == 200 and "Claims 1-3" in landed.text


def test_members_who_may_not_read_still_get_not_found(db, as_user) -> None:
    thread_id = _thread(db, as_user)
    kr, _ = as_user("kr.examiner")  # the category is for JP only
    for path in (f"/threads/{thread_id}", "/threads/999999"):
        answer = kr.get(path, follow_redirects=False)
        # what the page shows (a <template>, such as the signed-out notice kept for a
        # live socket that closes later, is not shown)
        shown = re.sub(r"<template\b.*?</template>", "", answer.text, flags=re.S).lower()
        assert answer.status_code == 404 and "log in" not in shown
    assert db.get(Thread, thread_id) is not None


def test_a_hidden_dossier_tells_a_visitor_to_log_in_without_revealing_it(
        client: TestClient) -> None:
    for path in ("/dossiers/CN/202080019375.4", "/dossiers/CN/000000000000.0"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert f"/login?next={path}" in answer.text


def test_upgrading_an_older_database_closes_every_office_until_it_decides(
        tmp_path: Path) -> None:
    """Before 0005 public access was on for every office without anyone choosing it."""
    from alembic import command
    from sqlalchemy import text

    from caseforum import accounts, schema

    engine = make_engine(Settings(data_dir=tmp_path, secret_key="k" * 32))
    config = schema.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004_quiet_posts")
        connection.execute(text("INSERT INTO office (code, name, providing, accessing, "
                                "public_access, ice_role) VALUES ('JP', 'JPO', 1, 1, 1, 'none')"))
        connection.execute(text(
            "INSERT INTO \"user\" (username, display_name, office_code, role, is_active, "
            "locale, created_at) VALUES ('jp.old', '', 'JP', 'examiner', 1, 'en', "
            "'2026-01-01 00:00:00')"))
        connection.execute(text(
            "INSERT INTO account_audit (event_id, at, kind, user_id, detail) "
            "VALUES (1, '2026-01-01 00:00:00', 'account.login', 1, '')"))
    host = PluginHost()
    host.load()
    init_database(engine, host)
    with open_session(engine) as session:
        jp = session.get(Office, "JP")
        assert jp.public_access is False and jp.public_access_changed_at is None
        assert session.exec(select(AccountAudit)).one().office_code == "JP"  # filled in
        assert accounts.get_office(session, "JP").code == "JP"
    engine.dispose()


def test_a_new_database_is_still_made_in_one_go(tmp_path: Path) -> None:
    """0005 only adds columns and runs constant statements: the fast path holds."""
    from caseforum import schema

    engine = make_engine(Settings(data_dir=tmp_path, secret_key="k" * 32))
    host = PluginHost()
    host.load()
    assert schema.create_empty(engine, [str(p) for p in host.migrations()]) is True
    engine.dispose()


@pytest.mark.usefixtures("steady_identity_cache")
def test_landing_page_asks_the_database_a_fixed_few_times(app, db) -> None:
    from caseforum import authcache
    from tests.sql_helpers import counted

    visitor = TestClient(app)
    visitor.get("/")  # the office table is now in this process's cache
    with counted(app.state.engine) as few:
        assert visitor.get("/").status_code == 200
    for office in db.exec(select(Office)):  # every office open: more rows, same queries
        office.public_access = True
        db.add(office)
    db.commit()
    authcache._offices.clear()  # (the fixture keeps commits from clearing it)
    assert "Viet Nam" in visitor.get("/").text
    with counted(app.state.engine) as many:
        assert visitor.get("/").status_code == 200
    assert len(few) == len(many) <= 3, (few, many)
    print(f"landing page: {len(many)} SQL statements")
