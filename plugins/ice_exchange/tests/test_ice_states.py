"""The state machine and the stepper, without a database."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from caseforum_ice_exchange.errors import Conflict
from caseforum_ice_exchange.parcels import clean_media_type, clean_name, unique_names
from caseforum_ice_exchange.states import allowed_steps, check_step, stepper, waiting_on


@pytest.mark.parametrize(("status", "kind", "side", "target"), [
    ("requested", "accept", "donor", "accepted"),
    ("requested", "decline", "donor", "declined"),
    ("accepted", "start", "donor", "in_progress"),
    ("accepted", "report", "donor", "report_delivered"),
    ("report_delivered", "report", "donor", "report_delivered"),
    ("report_delivered", "acknowledge", "recipient", "acknowledged"),
    ("acknowledged", "close", "donor", "closed"),
    ("requested", "close", "recipient", "closed"),
    ("in_progress", "documents", "recipient", None),
])
def test_allowed_steps(status: str, kind: str, side: str, target: str | None) -> None:
    assert check_step(status, kind, side).target == target


@pytest.mark.parametrize(("status", "kind", "side", "message"), [
    ("requested", "accept", "recipient", "only the donor office"),
    ("accepted", "accept", "donor", "while the exchange is Accepted"),
    ("closed", "documents", "donor", "while the exchange is Closed"),
    ("requested", "close", "donor", "while the exchange is Requested"),
    ("requested", "report", None, "only the donor office"),
])
def test_refused_steps_say_why(status: str, kind: str, side: str | None, message: str) -> None:
    with pytest.raises(Conflict, match=message):
        check_step(status, kind, side)


def test_next_moves_and_buttons() -> None:
    assert [s.kind for s in allowed_steps("requested", "donor")] == [
        "accept", "decline", "documents"]
    assert [s.kind for s in allowed_steps("closed", "recipient")] == []
    assert waiting_on(SimpleNamespace(status="report_delivered")) == "recipient"
    assert waiting_on(SimpleNamespace(status="closed")) is None


def test_stepper_marks_done_current_and_skipped() -> None:
    states = {s["name"]: s["state"] for s in stepper("report_delivered",
                                                     {"request", "accept", "report"})}
    assert states == {"requested": "done", "accepted": "done", "in_progress": "skipped",
                      "report_delivered": "current", "acknowledged": "todo", "closed": "todo"}
    declined = stepper("declined", {"request", "decline"})
    assert [s["state"] for s in declined] == ["done", "declined", "skipped", "skipped",
                                              "skipped", "skipped"]
    withdrawn = {s["name"]: s["state"] for s in stepper("closed", {"request", "close"})}
    assert withdrawn["closed"] == "done" and withdrawn["accepted"] == "skipped"


@pytest.mark.parametrize(("given", "expected"), [
    ("report.pdf", "report.pdf"),
    ("C:\\Users\\x\\claims.docx", "claims.docx"),
    ("../../etc/passwd", "passwd"),
    ("a\x00b\x1fc.txt", "a_b_c.txt"),
    ("...", "document"),
    ("", "document"),
    ("x" * 300 + ".pdf", "x" * 196 + ".pdf"),
])
def test_file_names_are_made_safe(given: str, expected: str) -> None:
    assert clean_name(given) == expected


def test_names_are_unique_and_media_types_checked() -> None:
    assert unique_names(["a.pdf", "a.pdf", "a.pdf", "b"]) == [
        "a.pdf", "a (2).pdf", "a (3).pdf", "b"]
    assert clean_media_type("Application/PDF") == "application/pdf"
    assert clean_media_type("text/plain; charset=UTF-8") == "text/plain; charset=utf-8"
    assert clean_media_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert clean_media_type(None) == "application/octet-stream"
