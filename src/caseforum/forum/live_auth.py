"""Who is on the other end of a live socket, checked at the handshake and again later.

A websocket outlives the request that opened it, so the viewer captured at the
handshake goes stale: the user may be disabled, log out, lose the token, or
their office may lose a role.  Each socket therefore keeps the credential it
came with (the hash of its session secret, or its token's id), and the hub asks
this module again, for many sockets at once: one query per kind of credential,
never one per socket.  The handshake itself is one query (credential, user and
office joined) plus one for the thread, so 500 sockets connect cheaply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from caseforum import i18n
from caseforum.authz import ThreadTarget, Viewer, can
from caseforum.db import one_of
from caseforum.forum.access import in_chunks
from caseforum.models import (
    ApiToken,
    Office,
    User,
    UserSession,
    utcnow,
)

#: websocket close codes (4000-4999 are the application's): the client is told why
CLOSE_UNAUTHENTICATED = 4401  # the session or token is no longer valid: log in again
CLOSE_FORBIDDEN = 4403  # still logged in, but no longer allowed to see this
CLOSE_NOT_FOUND = 4404  # no such thread (or not one this viewer may know of)
CLOSE_RELOAD = 4410  # missed events have left the log window, or too far behind: reload
#: how stale a session's "last seen" or a token's "last used" may get before it is written
TOUCH_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Credential:
    """What a socket authenticated with: ``("session", sha256 of the secret)`` or
    ``("token", token id)``."""

    kind: str
    key: str


class Rejected(Exception):
    """The credential is not (or no longer) good; the message says why."""


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _viewer(user: User, office: Office | None, scopes: frozenset[str] | None) -> Viewer:
    """The user as authorization sees them, with the language and zone they chose
    (the zone: their own, else their office's); empty where they chose none, for the
    handshake to fill in from the browser's wishes and the instance defaults."""
    zone_name = next((name for name in (user.time_zone, office.time_zone if office else "")
                      if name and i18n.zone(name) is not None), "")
    return Viewer.of(user, office, scopes).reading(user.locale, zone_name)


def resolve_session(session: Session, secret: str) -> tuple[Credential, Viewer]:
    """A session cookie's viewer in one query; :class:`Rejected` when it is not valid."""
    key = sha256(secret)
    row = session.exec(
        select(UserSession, User, Office)
        .join(User, User.id == UserSession.user_id)  # type: ignore[arg-type]
        .outerjoin(Office, Office.code == User.office_code)  # type: ignore[arg-type]
        .where(UserSession.id == key)
    ).first()
    if row is None:
        raise Rejected("unknown session: log in again")
    user_session, user, office = row
    if user_session.revoked_at is not None:
        raise Rejected("session ended: log in again")
    if user_session.expires_at < utcnow():
        raise Rejected("session expired: log in again")
    if not user.is_active:
        raise Rejected("the user is disabled")
    return Credential("session", key), _viewer(user, office, None)


def resolve_token(session: Session, plain: str) -> tuple[Credential, Viewer]:
    """A bearer token's viewer in one query; :class:`Rejected` when it is not valid."""
    row = session.exec(
        select(ApiToken, User, Office)
        .join(User, User.id == ApiToken.user_id)  # type: ignore[arg-type]
        .outerjoin(Office, Office.code == User.office_code)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == sha256(plain))
    ).first()
    if row is None or row[0].revoked_at is not None:
        raise Rejected("unknown or revoked API token")
    token, user, office = row
    if token.expires_at is not None and token.expires_at < utcnow():
        raise Rejected("API token expired: ask your office admin for a new one")
    if not user.is_active:
        raise Rejected("the token's user is disabled")
    return Credential("token", str(token.id)), _viewer(user, office, frozenset(token.scope_list))


#: what a :class:`Viewer` is made of, read as plain columns: re-checking 500 sockets
#: every 2 seconds must not build 1,000 ORM objects each time
_VIEWER_COLUMNS = (User.id, User.username, User.office_code, User.role, Office.providing,
                   Office.accessing)


def _viewer_of_row(facts: list[Any], scopes: frozenset[str] | None) -> Viewer:
    user_id, username, office_code, role, providing, accessing = facts
    return Viewer(user_id=user_id, username=username, office_code=office_code, role=str(role),
                  providing=bool(providing), accessing=bool(accessing), scopes=scopes)


def revalidate(session: Session, credentials: Iterable[Credential], *,
               touch: bool = False) -> dict[Credential, Viewer]:
    """The current viewer of every credential that is still good (the others are
    missing from the answer): per 500 credentials one query per kind and one for
    their users, reading only the columns a viewer is made of.  ``touch``: also
    refresh "last seen" / "last used" marks older than :data:`TOUCH_AFTER` (one
    update per kind), so a client that only keeps a socket open still shows as
    active; the caller asks for it now and then, not on every check, since it writes."""
    wanted = set(credentials)
    now = utcnow()
    out: dict[Credential, Viewer] = {}
    # the credentials first, by their keys, then their users by id: joined in one
    # statement, SQLite walked every user and probed the token index once per key
    # (500 sockets: 43 ms instead of under 2)
    good: list[tuple[Credential, int, frozenset[str] | None]] = []
    sessions = sorted(c.key for c in wanted if c.kind == "session")
    tokens = sorted(int(c.key) for c in wanted if c.kind == "token")
    for chunk in in_chunks(sessions):
        for key, user_id in session.exec(
                select(UserSession.id, UserSession.user_id).where(
                    one_of(session, UserSession.id, chunk),
                    UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
                    UserSession.expires_at > now)):  # type: ignore[operator]
            good.append((Credential("session", key), user_id, None))
    for ids in in_chunks(tokens):
        for token_id, user_id, scopes in session.exec(
                select(ApiToken.id, ApiToken.user_id, ApiToken.scopes).where(
                    one_of(session, ApiToken.id, ids),
                    ApiToken.revoked_at.is_(None),  # type: ignore[union-attr]
                    (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now))):  # type: ignore[union-attr, operator]
            good.append((Credential("token", str(token_id)), user_id, frozenset(scopes.split())))
    facts: dict[int, list[Any]] = {}
    for chunk in in_chunks(sorted({user_id for _, user_id, _ in good})):
        for row in session.exec(
                select(*_VIEWER_COLUMNS)
                .outerjoin(Office, Office.code == User.office_code)  # type: ignore[arg-type]
                .where(one_of(session, User.id, chunk), User.is_active.is_(True))):  # type: ignore[union-attr]
            facts[row[0]] = list(row)
    for credential, user_id, scopes in good:
        if user_id in facts:
            out[credential] = _viewer_of_row(facts[user_id], scopes)
    if touch and out:
        stale = now - TOUCH_AFTER
        good_sessions = [c.key for c in out if c.kind == "session"]
        good_tokens = [int(c.key) for c in out if c.kind == "token"]
        for chunk in in_chunks(good_sessions):
            session.exec(update(UserSession).where(  # type: ignore[call-overload]
                one_of(session, UserSession.id, chunk),
                UserSession.last_seen_at < stale).values(last_seen_at=now))
        for ids in in_chunks(good_tokens):
            session.exec(update(ApiToken).where(  # type: ignore[call-overload]
                one_of(session, ApiToken.id, ids),
                ApiToken.last_used_at.is_(None)  # type: ignore[union-attr]
                | (ApiToken.last_used_at < stale)).values(last_used_at=now))  # type: ignore[operator]
        session.commit()
    return out


def may_watch(viewer: Viewer, thread: ThreadTarget | None) -> bool:
    """Whether ``viewer`` may keep a socket on a thread (``None``: the thread is gone)."""
    return thread is not None and can(viewer, "thread.view", thread)

