"""Who is calling: resolved once per request, before CSRF and the route.

The viewer is resolved in the request's own session (:func:`caseforum.db.get_session`),
so a request never holds two connections.  Token and log-in-session answers are kept
for a few seconds (:mod:`caseforum.authcache`); on a hit no thread and no query is
needed, and a change to the user, token, session or office in this process empties
the cache at once.
"""

import hashlib
from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from itsdangerous import BadSignature, URLSafeSerializer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from caseforum import accounts, authcache, errors
from caseforum.authcache import Identity
from caseforum.authz import ANONYMOUS, Viewer
from caseforum.db import SessionDep, open_session
from caseforum.i18n import N_
from caseforum.models import User, utcnow

SESSION_COOKIE = "cf_session"
TOUCH_EVERY = timedelta(minutes=5)  # how stale last_used_at / last_seen_at may get


def cookie_signer(conn: HTTPConnection) -> URLSafeSerializer:
    return URLSafeSerializer(conn.app.state.settings.secret_key, salt="session")


def _credentials(conn: HTTPConnection) -> tuple[str, str] | None:
    """``("token", plain)``, ``("session", secret)`` or ``None`` (anonymous)."""
    auth = conn.headers.get("authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise errors.Unauthorized("use 'Authorization: Bearer TOKEN'",
                                      headers={"WWW-Authenticate": "Bearer"})
        return "token", value.strip()
    raw = conn.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            secret = cookie_signer(conn).loads(raw)
        except BadSignature:
            return None
        if isinstance(secret, str):
            return "session", secret
    return None


def _key(kind: str, value: str) -> tuple[str, str]:
    return kind, hashlib.sha256(value.encode()).hexdigest()


def _fresh(identity: Identity | None) -> Identity | None:
    if identity is None or (identity.expires_at is not None and identity.expires_at < utcnow()):
        return None
    return identity


def _anonymous(conn: HTTPConnection) -> Viewer:
    state = conn.state
    state.viewer, state.user, state.office = ANONYMOUS, None, None
    state.auth_kind, state.session_secret = None, None
    return ANONYMOUS


def _apply(conn: HTTPConnection, kind: str, value: str, identity: Identity,
           session: Session | None) -> Viewer:
    """Put a cached identity on the request, as objects of the request's session."""
    user, office = identity.user, identity.office
    if session is not None:
        user = session.merge(user, load=False)
        office = session.merge(office, load=False) if office is not None else None
    else:
        user = authcache.snapshot(user)
        office = authcache.snapshot(office) if office is not None else None
    state = conn.state
    state.auth_kind = kind
    state.session_secret = value if kind == "session" else None
    state.user, state.office = user, office
    state.viewer = Viewer.of(user, office, identity.scopes)
    return state.viewer


def _load(session: Session, kind: str, value: str) -> tuple[User, Identity] | None:
    """The database path: check the token or session, touch its last use."""
    now = utcnow()
    if kind == "token":
        token, user = accounts.resolve_token(session, value)  # or TokenRejected, a 401
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            token.last_used_at = now
            session.add(token)
            session.commit()
        scopes: frozenset[str] | None = frozenset(token.scope_list)
        expires = token.expires_at
    else:
        found = accounts.resolve_session(session, value)
        if found is None:
            return None
        row, user = found
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
            session.add(row)
            session.commit()
        scopes, expires = None, row.expires_at
    office = authcache.offices(session).get(user.office_code)
    return user, Identity(authcache.snapshot(user), office, scopes, expires)


def _resolve(conn: HTTPConnection, session: Session) -> Viewer:
    """Cache first, then the database (in ``session``); sets ``conn.state``."""
    credentials = _credentials(conn)
    if credentials is None:
        return _anonymous(conn)
    kind, value = credentials
    key = _key(kind, value)
    identity = _fresh(authcache.identities.get(key))
    if identity is None:
        generation = authcache.identities.generation
        loaded = _load(session, kind, value)
        if loaded is None:
            return _anonymous(conn)
        _user, identity = loaded
        authcache.identities.put(key, identity, generation)
    return _apply(conn, kind, value, identity, session)


def load_viewer(conn: HTTPConnection) -> Viewer:
    """The viewer of ``conn`` (blocking: call it from a thread, e.g. a websocket's
    handshake).  Uses the request's session when there is one, else a short one."""
    state = conn.state
    if getattr(state, "viewer", None) is not None:
        return state.viewer
    session = getattr(state, "db", None)
    if session is not None:
        return _resolve(conn, session)
    app_state = conn.app.state
    with open_session(app_state.engine, app_state.broker) as own:
        return _resolve(conn, own)


async def resolve_viewer(conn: HTTPConnection, session: SessionDep) -> Viewer:
    """App-wide dependency.  A cache hit (or no credentials) costs no thread and no
    query; a miss asks the database in a thread, in the request's session."""
    state = conn.state
    if getattr(state, "viewer", None) is not None:
        return state.viewer
    if conn.scope["type"] != "http":  # websockets: a short session, not one held open
        return await run_in_threadpool(load_viewer, conn)
    credentials = _credentials(conn)
    if credentials is None:
        return _anonymous(conn)
    kind, value = credentials
    identity = _fresh(authcache.identities.get(_key(kind, value)))
    if identity is not None:
        return _apply(conn, kind, value, identity, session)
    return await run_in_threadpool(_resolve, conn, session)


async def current_viewer(conn: HTTPConnection) -> Viewer:
    viewer = getattr(conn.state, "viewer", None)
    if viewer is None:  # outside the app-wide dependency (tests mounting a bare router)
        viewer = await run_in_threadpool(load_viewer, conn)
    return viewer


async def current_user(conn: HTTPConnection) -> User:
    """The logged-in user, or 401."""
    await current_viewer(conn)
    user = getattr(conn.state, "user", None)
    if user is None:
        raise errors.Unauthorized(N_("Log in first"))
    return user


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
CurrentUser = Annotated[User, Depends(current_user)]
