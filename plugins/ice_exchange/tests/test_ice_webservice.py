"""Two real CaseForum instances on loopback, one office each, exchanging over HTTP.

SG's instance asks JP's instance for a search; JP accepts and returns a report;
SG acknowledges and closes. Every parcel must come back with a receipt signed by
the other office that verifies against the key exchanged out of band.
"""

from __future__ import annotations

from typing import Any

import httpx
from caseforum_ice_exchange import audit, crypto, delivery, keys, workflow
from caseforum_ice_exchange.api import runtime
from caseforum_ice_exchange.models import IceAuditEntry, IceParcel
from sqlmodel import select

from caseforum.db import open_session
from caseforum.models import User

from .conftest import Instance, wait_for

CLAIMS = b"1. A lamp comprising a solar cell and a battery.\n" * 50
REPORT = b"%PDF-1.4\nsearch report: X D1 claims 1-3\n" + bytes(range(256)) * 300


def exchange_on(client: httpx.Client, exchange_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/ice/exchanges/{exchange_id}")
    assert response.status_code == 200, response.text
    return response.json()


def all_delivered(client: httpx.Client, exchange_id: str, count: int) -> dict[str, Any] | None:
    data = exchange_on(client, exchange_id)
    parcels = data["parcels"]
    if len(parcels) == count and all(p["status"] == "delivered" for p in parcels):
        return data
    return None


def check_receipts(instance: Instance, peer: Instance, data: dict[str, Any]) -> None:
    """Each parcel this instance sent carries a receipt the peer's key verifies."""
    with open_session(peer.engine) as session:
        peer_keys = crypto.import_public(keys.export_keys(session, office_code=peer.office))
    outgoing = [p for p in data["parcels"] if p["sender_office"] == instance.office]
    assert outgoing
    for parcel in outgoing:
        receipt = dict(parcel["receipt"])
        signature = receipt.pop("signature")
        crypto.verify_receipt(receipt, signature, peer_keys.verify_key)
        assert receipt["parcel_id"] == parcel["id"]
        assert receipt["receiver_office"] == peer.office
        assert receipt["verdict"] == "accepted"
        assert parcel["verification"] == {"signature": "ok", "hashes": "ok", "receipt": "ok"}


def ask_jp_for_a_search(sg_api: httpx.Client) -> str:
    """SG asks JP for a search over the webservice route; the exchange's id once the
    request is delivered."""
    created = sg_api.post("/api/v1/ice/exchanges", data={
        "donor_office": "JP", "application": "JP 2017-187096", "kind": "search",
        "due_date": "2099-01-31", "message": "Could you search claims 1-3?",
        "route": "webservice",
    }, files=[("file", ("claims.txt", CLAIMS, "text/plain"))])
    assert created.status_code == 201, created.text
    exchange_id: str = created.json()["id"]
    assert created.json()["route"] == "webservice"
    wait_for(lambda: all_delivered(sg_api, exchange_id, 1), what="request delivered")
    return exchange_id


def test_full_exchange_between_two_instances(pair: tuple[Instance, Instance]) -> None:
    sg, jp = pair
    sg.server.start()
    jp.server.start()
    sg_api, jp_api = sg.api("sg.examiner"), jp.api("jp.examiner")
    exchange_id = ask_jp_for_a_search(sg_api)

    # JP's instance has the same exchange, verified, readable by JP's examiner.
    at_jp = exchange_on(jp_api, exchange_id)
    assert at_jp["status"] == "requested"
    assert at_jp["application"]["display"] == "2017-187096"
    assert at_jp["waiting_on"] == "JP"
    request = at_jp["parcels"][0]
    assert request["message"] == "Could you search claims 1-3?"
    assert request["verification"] == {"signature": "ok", "hashes": "ok", "receipt": "ok"}
    assert jp_api.get(request["files"][0]["url"]).content == CLAIMS

    accepted = jp_api.post(f"/api/v1/ice/exchanges/{exchange_id}/parcels",
                           json={"kind": "accept", "message": "We will do it."})
    assert accepted.status_code == 201, accepted.text
    report = jp_api.post(f"/api/v1/ice/exchanges/{exchange_id}/parcels",
                         data={"kind": "report", "message": "Report attached."},
                         files=[("file", ("search report.pdf", REPORT, "application/pdf"))])
    assert report.status_code == 201, report.text
    wait_for(lambda: all_delivered(jp_api, exchange_id, 3), what="report delivered")

    at_sg = exchange_on(sg_api, exchange_id)
    assert at_sg["status"] == "report_delivered"
    assert at_sg["waiting_on"] == "SG"
    report_parcel = at_sg["parcels"][-1]
    assert report_parcel["kind"] == "report"
    assert report_parcel["message"] == "Report attached."
    download = sg_api.get(report_parcel["files"][0]["url"])
    assert download.status_code == 200
    assert download.content == REPORT
    assert download.headers["content-type"] == "application/pdf"
    assert "search%20report.pdf" in download.headers["content-disposition"]

    for kind in ("acknowledge", "close"):
        step = sg_api.post(f"/api/v1/ice/exchanges/{exchange_id}/parcels", json={"kind": kind})
        assert step.status_code == 201, step.text
    final_sg = wait_for(lambda: all_delivered(sg_api, exchange_id, 5), what="close delivered")
    final_jp = wait_for(lambda: all_delivered(jp_api, exchange_id, 5), what="JP sees all")
    assert final_sg["status"] == final_jp["status"] == "closed"
    assert [p["id"] for p in final_sg["parcels"]] == [p["id"] for p in final_jp["parcels"]]

    check_receipts(sg, jp, final_sg)
    check_receipts(jp, sg, final_jp)
    for instance in (sg, jp):
        with open_session(instance.engine) as session:
            reports = audit.verify_all(session)
            assert reports and all(r.ok for r in reports), [r.describe() for r in reports]
            actions = [e.action for e in session.exec(
                select(IceAuditEntry).where(IceAuditEntry.exchange_id == exchange_id))]
        assert "receipt.verified" in actions and "receipt.signed" in actions
        assert "file.opened" in actions


def test_instance_down_during_sending_gets_it_exactly_once(
        pair: tuple[Instance, Instance]) -> None:
    sg, jp = pair
    sg.server.start()  # JP's instance is down
    sg_api = sg.api("sg.examiner")
    created = sg_api.post("/api/v1/ice/exchanges", json={
        "donor_office": "JP", "application": "PCT/CN2015/000123", "kind": "examination",
        "message": "Full examination, please."})
    assert created.status_code == 201, created.text
    exchange_id = created.json()["id"]

    def failed_twice() -> dict[str, Any] | None:
        parcel = exchange_on(sg_api, exchange_id)["parcels"][0]
        return parcel if parcel["attempts"] >= 2 and parcel["status"] == "queued" else None

    parcel = wait_for(failed_twice, what="two failed attempts")
    assert "cannot deliver" in parcel["last_error"]
    assert parcel["verification"]["receipt"] == "pending"

    jp.server.start()
    wait_for(lambda: all_delivered(sg_api, exchange_id, 1), what="delivery after restart")
    with open_session(jp.engine) as session:
        rows = session.exec(select(IceParcel).where(IceParcel.exchange_id == exchange_id)).all()
        received = session.exec(select(IceAuditEntry).where(
            IceAuditEntry.parcel_id == rows[0].id,
            IceAuditEntry.action == "parcel.received.request")).all()
    assert len(rows) == 1 and len(received) == 1


def test_a_lost_answer_is_harmless_the_retry_gets_the_same_receipt(
        pair: tuple[Instance, Instance]) -> None:
    """The sender retries after losing the peer's answer: no second copy, same receipt."""
    sg, jp = pair
    jp.server.start()
    sg_rt = runtime(sg.app)
    with open_session(sg.engine) as session:
        examiner = session.exec(select(User).where(User.username == "sg.examiner")).one()
        _, parcel = workflow.open_request(session, rt=sg_rt, user=examiner, donor_office="JP",
                                          application="JP 2017-187096", kind="search")
    route = sg_rt.routes["webservice"]
    first = route.send(delivery.envelope_for(sg_rt, parcel), sg_rt)
    second = route.send(delivery.envelope_for(sg_rt, parcel), sg_rt)  # "answer was lost"
    assert first == second
    assert delivery.deliver(sg_rt, parcel.id) == "delivered"
    with open_session(jp.engine) as session:
        assert len(session.exec(select(IceParcel).where(IceParcel.id == parcel.id)).all()) == 1
        refused = session.exec(select(IceAuditEntry).where(
            IceAuditEntry.action == "parcel.refused")).all()
    assert len(refused) == 2 and all("replay" in e.detail for e in refused)
