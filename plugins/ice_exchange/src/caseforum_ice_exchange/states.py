"""The exchange state machine, in one table both instances apply identically.

Every step travels as a parcel of the same name, so the recipient's and the
donor's instance move an exchange through the same states in the same order,
and the receiving side refuses a parcel whose step does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from caseforum.i18n import Msg

from .errors import Conflict

KINDS: dict[str, str] = {
    "search": Msg("Search and search report"),
    "written_opinion": Msg("Search and written opinion"),
    "examination": Msg("Full examination"),
}

STEPPER: tuple[tuple[str, str], ...] = (
    ("requested", Msg("Requested")),
    ("accepted", Msg("Accepted")),
    ("in_progress", Msg("In progress")),
    ("report_delivered", Msg("Report delivered")),
    ("acknowledged", Msg("Acknowledged")),
    ("closed", Msg("Closed")),
)
STATUS_LABELS: dict[str, str] = {**dict(STEPPER), "declined": Msg("Declined")}
STATUSES = frozenset(STATUS_LABELS)
OPEN_STATUSES = frozenset({"requested", "accepted", "in_progress", "report_delivered",
                           "acknowledged"})


@dataclass(frozen=True)
class Step:
    """A parcel kind: who may send it, from which states, and where it leads."""

    kind: str
    label: str
    sources: dict[str, frozenset[str]]  # side -> statuses it may be sent from
    target: str | None  # None: the status stays
    needs_files: bool = False
    needs_note: bool = False
    help: str = ""  # a sentence the page shows under the step's button


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


STEPS: dict[str, Step] = {s.kind: s for s in (
    Step("request", Msg("Request"), {"recipient": _s()}, "requested",
         help=Msg("Open the exchange (sent once, when the request is made).")),
    Step("accept", Msg("Accept"), {"donor": _s("requested")}, "accepted",
         help=Msg("Take on the work.")),
    Step("decline", Msg("Decline"), {"donor": _s("requested")}, "declined", needs_note=True,
         help=Msg("Refuse the request; say why.")),
    Step("start", Msg("Start work"), {"donor": _s("accepted")}, "in_progress",
         help=Msg("Tell the recipient office that an examiner is working on it.")),
    Step("report", Msg("Send report"), {"donor": _s("accepted", "in_progress", "report_delivered")},
         "report_delivered", needs_files=True,
         help=Msg("Deliver the search or examination report and any documents.")),
    Step("documents", Msg("Send documents"),
         {"recipient": OPEN_STATUSES, "donor": OPEN_STATUSES}, None, needs_files=True,
         help=Msg("Add documents without changing the state.")),
    Step("acknowledge", Msg("Acknowledge report"), {"recipient": _s("report_delivered")},
         "acknowledged", help=Msg("Confirm that the report arrived and was read.")),
    Step("close", Msg("Close"),
         {"recipient": OPEN_STATUSES | {"declined"}, "donor": _s("acknowledged", "declined")},
         "closed", help=Msg("End the exchange; nothing can be sent afterwards.")),
)}
ACTION_KINDS = tuple(k for k in STEPS if k != "request")


def check_step(status: str | None, kind: str, side: str | None) -> Step:
    """The step, if ``side`` may send ``kind`` while the exchange is ``status``."""
    step = STEPS.get(kind)
    if step is None:
        raise Conflict(f"unknown step {kind!r}: use one of {', '.join(ACTION_KINDS)}",
                       code="invalid_kind", status=422)
    if side is None or side not in step.sources:
        who = " or ".join(f"the {s} office" for s in step.sources)
        raise Conflict(f"only {who} can {step.label.lower()}")
    if kind == "request":
        if status is not None:
            raise Conflict("the request was already made")
        return step
    if status not in step.sources[side]:
        label = STATUS_LABELS.get(status or "", status)
        raise Conflict(f"cannot {step.label.lower()} while the exchange is {label}")
    return step


def allowed_steps(status: str, side: str | None) -> list[Step]:
    """The steps ``side`` may take now, in workflow order (for the page's buttons)."""
    if side is None:
        return []
    return [s for k, s in STEPS.items()
            if k != "request" and side in s.sources and status in s.sources[side]]


WAITING_ON: dict[str, str] = {
    "requested": "donor",
    "accepted": "donor",
    "in_progress": "donor",
    "report_delivered": "recipient",
    "acknowledged": "recipient",
}
"""Status -> the side with the next move (closed and declined exchanges wait for nobody)."""


def waiting_on(exchange: Any) -> str | None:
    """Which side the exchange waits for: the office with the next move."""
    return WAITING_ON.get(exchange.status)


KIND_REACHES: dict[str, str] = {
    "request": "requested", "accept": "accepted", "decline": "declined", "start": "in_progress",
    "report": "report_delivered", "acknowledge": "acknowledged", "close": "closed",
}


def stepper(status: str, kinds_sent: set[str] | None = None) -> list[dict[str, str]]:
    """The status stepper: each step done, current, upcoming, or skipped.

    ``kinds_sent`` (the parcel kinds of the exchange) tells which steps a closed
    or declined exchange actually went through, so skipped steps are not shown done.
    """
    reached = {KIND_REACHES[k] for k in (kinds_sent or set()) if k in KIND_REACHES}
    order = [name for name, _ in STEPPER]
    items = []
    if status in ("declined", "closed"):
        for name, label in STEPPER:
            if name == "accepted" and "declined" in reached | {status}:
                items.append({"name": name, "label": "Declined", "state": "declined"})
                continue
            done = name in reached or name == "requested" or name == status
            items.append({"name": name, "label": label, "state": "done" if done else "skipped"})
        return items
    position = order.index(status) if status in order else -1
    for i, (name, label) in enumerate(STEPPER):
        state = "done" if i < position else "current" if i == position else "todo"
        if state == "done" and kinds_sent is not None and name not in reached:
            state = "skipped"
        items.append({"name": name, "label": label, "state": state})
    return items
