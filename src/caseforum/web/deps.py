"""Who is calling: resolved once per request, before CSRF and the route."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import HTTPConnection

from caseforum import accounts, errors
from caseforum.authz import ANONYMOUS, Viewer
from caseforum.db import open_session
from caseforum.models import Office, User, utcnow

SESSION_COOKIE = "cf_session"


def cookie_signer(conn: HTTPConnection) -> URLSafeSerializer:
    return URLSafeSerializer(conn.app.state.settings.secret_key, salt="session")


def load_viewer(conn: HTTPConnection) -> Viewer:
    """App-wide dependency (runs in the thread pool): bearer token or session cookie."""
    state = conn.state
    if getattr(state, "viewer", None) is not None:
        return state.viewer
    app_state = conn.app.state
    state.viewer, state.user, state.auth_kind, state.session_secret = ANONYMOUS, None, None, None
    auth = conn.headers.get("authorization", "")
    with open_session(app_state.engine, app_state.broker) as session:
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise errors.Unauthorized("use 'Authorization: Bearer TOKEN'",
                                          headers={"WWW-Authenticate": "Bearer"})
            token, user = accounts.resolve_token(session, value.strip())  # or TokenRejected
            now = utcnow()
            if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=5):
                token.last_used_at = now
                session.add(token)
                session.commit()
            state.auth_kind = "token"
            _set(state, user, session.get(Office, user.office_code),
                 frozenset(token.scope_list))
            return state.viewer
        raw = conn.cookies.get(SESSION_COOKIE)
        if raw:
            try:
                secret = cookie_signer(conn).loads(raw)
            except BadSignature:
                secret = None
            found = accounts.resolve_session(session, secret) if isinstance(secret, str) else None
            if found:
                row, user = found
                now = utcnow()
                if now - row.last_seen_at > timedelta(minutes=5):
                    row.last_seen_at = now
                    session.add(row)
                    session.commit()
                state.auth_kind = "session"
                state.session_secret = secret
                _set(state, user, session.get(Office, user.office_code), None)
    return state.viewer


def _set(state: object, user: User, office: Office | None, scopes: frozenset[str] | None) -> None:
    state.user = user  # type: ignore[attr-defined]
    state.office = office  # type: ignore[attr-defined]
    state.viewer = Viewer.of(user, office, scopes)  # type: ignore[attr-defined]


def current_viewer(conn: HTTPConnection) -> Viewer:
    return load_viewer(conn)


def current_user(conn: HTTPConnection) -> User:
    """The logged-in user, or 401."""
    load_viewer(conn)
    user = getattr(conn.state, "user", None)
    if user is None:
        raise errors.Unauthorized("Log in first")
    return user


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
CurrentUser = Annotated[User, Depends(current_user)]
