"""The errors of the ICE workflow, each with an HTTP status and a stable code.

Callers (API, pages, CLI, the peer inbox) turn them into a 4xx answer, a flash
message or a one-line CLI error; the ``code`` is what a machine client or a
peer instance can act on without parsing English.
"""

from __future__ import annotations

from caseforum import errors


class IceError(errors.CaseForumError):
    """Something the caller can fix: bad input, a step not allowed now, a missing key.

    A member of the core error family, so the app's one handler renders it when a
    route lets it propagate; the ICE routes keep their own codes (``invalid``,
    ``oversize``, ...) because peer instances act on them.
    """

    status: int = 400
    code: str = "invalid"


class NotFound(IceError):
    status = 404
    code = "not_found"


class Conflict(IceError):
    """The step does not fit the exchange's current state."""

    status = 409
    code = "invalid_transition"


class Refused(IceError):
    """An incoming parcel was refused; it is audited and nothing is stored as received.

    Codes: ``malformed`` (400), ``unknown_peer`` and ``bad_signature`` (403),
    ``replay``, ``unknown_exchange``, ``invalid_transition`` (409), ``oversize``
    (413), ``misaddressed``, ``tampered``, ``not_accepted`` (422).
    """

    status = 422
    code = "refused"


class DeliveryError(Exception):
    """A transient failure while delivering a parcel: try again later."""
