"""One family of errors a caller can fix, each with an HTTP status and a stable code.

Domain modules (accounts, offices, dossiers, forum, storage, numbers, the ICE plugin)
raise members of this family; they never import FastAPI. One handler in ``app.py``
turns any of them into ``{"detail": ..., "code": ...}`` for API callers or the error
page for browsers, and the ``caseforum`` command prints them as one line. The
``code`` is what a machine client can act on without parsing English.

``CaseForumError`` is deliberately *not* a ``ValueError``: a ``ValueError`` raised by
our own code is a bug and must reach the log as a 500, not be dressed up as a 422.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from caseforum.i18n import N_

M = TypeVar("M", bound=BaseModel)


class CaseForumError(Exception):
    """Something the caller can fix; ``message`` says what."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str = "", *, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers
        self.extra = extra or {}

    def as_json(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code, **self.extra}


class BadRequest(CaseForumError):
    """The request cannot be read at all (e.g. a broken multipart body)."""

    status = 400
    code = "bad_request"


class Unauthorized(CaseForumError):
    """Not logged in, or the credentials were refused."""

    status = 401
    code = "unauthorized"


class Forbidden(CaseForumError):
    status = 403
    code = "forbidden"


class NotFound(CaseForumError):
    status = 404
    code = "not_found"


class Conflict(CaseForumError):
    """The request does not fit the current state (a duplicate, a step not allowed now)."""

    status = 409
    code = "conflict"


class TooLarge(CaseForumError):
    status = 413
    code = "too_large"


class InvalidInput(CaseForumError):
    """The request was read but a value is wrong; the message names it."""

    status = 422
    code = "invalid_input"


class RateLimited(CaseForumError):
    status = 429
    code = "rate_limited"


class Unavailable(CaseForumError):
    """A part we depend on (a dossier source, the database pool) cannot answer now."""

    status = 503
    code = "unavailable"


#: seconds a client is told to wait (``Retry-After``) when the database cannot be reached
DATABASE_RETRY_AFTER = 5


class DatabaseUnreachable(Unavailable):
    """The database server refused or dropped the connection: it is down or restarting,
    or has no connection slot left ("too many clients").  Nothing the caller did: the
    same request works once the server answers again, hence ``Retry-After`` and the
    code every other 503 has (a client retries them all alike)."""

    def __init__(self, message: str = N_("The database is not reachable; try again "
                                         "shortly.")) -> None:
        super().__init__(message, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


#: The code of an error that did not come from this family (Starlette, FastAPI).
STATUS_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    411: "length_required", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid_input", 429: "rate_limited", 500: "server_error", 503: "unavailable",
}


def code_for(status: int) -> str:
    return STATUS_CODES.get(status, "bad_request" if status < 500 else "server_error")


class ErrorOut(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow")

    detail: str
    code: str


#: where the OpenAPI document describes :class:`ErrorOut` (:func:`describe_errors`)
ERROR_SCHEMA_REF = "#/components/schemas/ErrorOut"


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error statuses an operation can return.

    They point at the one ``ErrorOut`` schema rather than naming the model: FastAPI
    makes a pydantic field for every ``model`` of every route, only to describe it,
    which for the app-wide :data:`API_ERRORS` meant eight per route, most of the
    time the first request after start-up spent finding its route."""
    return {status: {"description": code_for(status).replace("_", " "),
                     "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}}}
            for status in statuses}


def describe_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the ``ErrorOut`` schema that :func:`responses` refers to (in place)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(mode="serialization"))
    return spec


#: What any API operation may answer: unreadable or wrong input, not logged in or not
#: allowed, missing, in conflict, too large, and a busy server.
API_ERRORS = responses(400, 401, 403, 404, 409, 413, 422, 503)


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``model`` built from what a user typed (a form), or :class:`InvalidInput` naming the
    first wrong field. Only for user input: a ``ValidationError`` anywhere else is a bug."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}" if where else first["msg"]) from None
