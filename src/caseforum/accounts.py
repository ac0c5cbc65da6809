"""Users, passwords, log-in sessions, throttling and API tokens.

Data functions take the session first and everything else by keyword; they
add the matching ``account.*`` event so that the change and its record
commit together.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func
from sqlmodel import Session, select

from caseforum.authz import SCOPES
from caseforum.events import emit
from caseforum.models import ApiToken, LoginFailure, Office, User, UserSession, utcnow
from caseforum.models.account import Role

_hasher = PasswordHasher()  # argon2id with the library's current parameters


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users (same cost as a real check).  Made
    on first use, not at import: argon2 takes most of a second, which every start of
    the server and every ``caseforum`` command paid."""
    return _hasher.hash("timing-equaliser")

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "cf_"


class AccountError(ValueError):
    """Bad input for an account operation; the message says what to fix."""


class Throttled(Exception):
    """Too many failed log-ins for this account or address."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def get_office(session: Session, code: str) -> Office:
    office = session.get(Office, code.upper())
    if office is None:
        raise AccountError(f"unknown office {code!r}: see 'caseforum offices list'")
    return office


def create_user(
    session: Session,
    *,
    username: str,
    office_code: str,
    role: str,
    password: str | None,
    display_name: str = "",
    actor_id: int | None = None,
) -> User:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError(
            "username must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'"
        )
    try:
        role_value = Role(role)
    except ValueError:
        raise AccountError(
            f"unknown role {role!r}: use one of {', '.join(r.value for r in Role)}"
        ) from None
    office = get_office(session, office_code)
    if session.exec(select(User).where(User.username == username)).first():
        raise AccountError(f"username {username!r} is taken")
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccountError(f"password must be at least {MIN_PASSWORD} characters")
    user = User(
        username=username,
        display_name=display_name,
        office_code=office.code,
        role=role_value,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    emit(session, kind="account.created", actor_id=actor_id, office_code=office.code,
         subject_type="user", subject_id=user.id or "",
         payload={"user_id": user.id, "detail": f"{username} ({role_value.value})"})
    return user


def set_active(session: Session, *, user: User, active: bool, actor_id: int | None) -> None:
    """Disable or re-enable a user.  Disabling ends every session at once; the
    user's API tokens are refused while the user is disabled."""
    user.is_active = active
    session.add(user)
    if not active:
        now = utcnow()
        for row in session.exec(
            select(UserSession).where(UserSession.user_id == user.id,
                                      UserSession.revoked_at.is_(None))  # type: ignore[union-attr]
        ):
            row.revoked_at = now
            session.add(row)
    emit(session, kind="account.enabled" if active else "account.disabled", actor_id=actor_id,
         office_code=user.office_code, subject_type="user", subject_id=user.id or "",
         payload={"user_id": user.id, "detail": user.username})


# Log-in and throttling -------------------------------------------------------


def _recent_failures(session: Session, since: datetime, **where: str) -> int:
    column = LoginFailure.username if "username" in where else LoginFailure.address
    value = where.get("username") or where.get("address")
    return session.exec(
        select(func.count()).select_from(LoginFailure).where(column == value,
                                                             LoginFailure.at >= since)
    ).one()


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    address: str,
    max_failures: int = 5,
    max_failures_per_address: int = 30,
    window_minutes: int = 15,
) -> User | None:
    """Check a password.  Raise :class:`Throttled` after too many failures;
    a failure is recorded (and committed) even though the caller gets ``None``."""
    username = username.strip().lower()
    since = utcnow() - timedelta(minutes=window_minutes)
    if (
        _recent_failures(session, since, username=username) >= max_failures
        or _recent_failures(session, since, address=address) >= max_failures_per_address
    ):
        raise Throttled
    user = session.exec(select(User).where(User.username == username)).first()
    ok = False
    try:
        if user and user.password_hash and user.is_active:
            ok = _hasher.verify(user.password_hash, password)
        else:
            _hasher.verify(_dummy_hash(), password + "x")  # same cost as a real check
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        session.add(LoginFailure(username=username, address=address))
        emit(session, kind="account.login_failed", subject_type="user",
             subject_id=user.id if user else "",
             payload={"user_id": user.id if user else None,
                      "detail": f"{username} from {address}"})
        session.commit()
        return None
    if _hasher.check_needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
        session.add(user)
    return user


def start_session(
    session: Session, *, user: User, days: int, address: str = "", user_agent: str = ""
) -> str:
    """Create a fresh server-side session; returns the secret the cookie carries."""
    secret = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id=_sha256(secret),
            user_id=user.id or 0,
            expires_at=utcnow() + timedelta(days=days),
            address=address,
            user_agent=user_agent[:200],
        )
    )
    emit(session, kind="account.login", actor_id=user.id, office_code=user.office_code,
         subject_type="user", subject_id=user.id or "",
         payload={"user_id": user.id, "detail": f"from {address}"})
    return secret


def resolve_session(session: Session, secret: str) -> tuple[UserSession, User] | None:
    row = session.get(UserSession, _sha256(secret))
    if row is None or row.revoked_at is not None or row.expires_at < utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return row, user


def end_session(session: Session, secret: str) -> None:
    row = session.get(UserSession, _sha256(secret))
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = utcnow()
    session.add(row)
    emit(session, kind="account.logout", actor_id=row.user_id, subject_type="user",
         subject_id=row.user_id, payload={"user_id": row.user_id})


# API tokens ---------------------------------------------------------------------


def create_token(
    session: Session,
    *,
    user: User,
    scopes: list[str],
    expires_days: int | None = 90,
    name: str = "",
    actor_id: int | None = None,
) -> tuple[ApiToken, str]:
    """Issue a token; the plain value is returned once and never stored."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise AccountError(
            f"unknown scope {unknown[0]!r}: use one of {', '.join(sorted(SCOPES))}"
        )
    if not scopes:
        raise AccountError("give at least one scope")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise AccountError("expiry must be between 1 and 3650 days")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id or 0,
        name=name,
        prefix=plain[:10],
        token_hash=_sha256(plain),
        scopes=" ".join(sorted(set(scopes))),
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    emit(session, kind="account.token_created", actor_id=actor_id or user.id,
         office_code=user.office_code, subject_type="user", subject_id=user.id or "",
         payload={"user_id": user.id, "detail": f"token {token.prefix}… {token.scopes}"})
    return token, plain


class TokenRejected(Exception):
    """The bearer token is unknown, revoked or expired; the message says which."""


def resolve_token(session: Session, plain: str) -> tuple[ApiToken, User]:
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == _sha256(plain))).first()
    if token is None or token.revoked_at is not None:
        raise TokenRejected("unknown or revoked API token")
    if token.expires_at is not None and token.expires_at < utcnow():
        raise TokenRejected("API token expired: ask your office admin for a new one")
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise TokenRejected("the token's user is disabled")
    return token, user


def revoke_token(session: Session, *, token: ApiToken, actor_id: int | None) -> None:
    token.revoked_at = utcnow()
    session.add(token)
    emit(session, kind="account.token_revoked", actor_id=actor_id, subject_type="user",
         subject_id=token.user_id,
         payload={"user_id": token.user_id, "detail": f"token {token.prefix}…"})
