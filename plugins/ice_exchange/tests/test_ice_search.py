"""Exchanges in search: found by their two offices only."""

from __future__ import annotations

from typing import Any

from tests.search_helpers import found, index_now

from .test_ice_hosted import open_request


def test_an_exchange_is_found_by_its_two_offices_only(hosted_app: Any, as_user: Any) -> None:
    sg, sg_csrf = as_user("sg.examiner", on=hosted_app)
    exchange_id = open_request(sg, sg_csrf)
    index_now(hosted_app)
    jp, _ = as_user("jp.examiner", on=hosted_app)
    for client in (sg, jp):
        answer = found(client, "kind:exchange")
        assert [r["url"] for r in answer["results"]] == [f"/ice/{exchange_id}"]
        assert found(client, "2017-187096", kind="exchange")["total"] == 1
    for name in ("kr.examiner", "admin"):  # another office; the admin sees state only
        other, _ = as_user(name, on=hosted_app)
        assert found(other, "kind:exchange")["total"] == 0
