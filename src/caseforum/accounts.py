"""Users, passwords, log-in sessions, throttling and API tokens.

Data functions take the session first and everything else by keyword; they
add the matching ``account.*`` event so that the change and its record
commit together.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, text
from sqlmodel import Session, select

from caseforum import errors, passwords
from caseforum.authz import SCOPES
from caseforum.events import emit
from caseforum.models import ApiToken, LoginFailure, Office, User, UserSession, utcnow
from caseforum.models.account import Role

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "cf_"


class AccountError(errors.InvalidInput):
    """Bad input for an account operation; the message says what to fix."""


class Throttled(errors.RateLimited):
    """Too many failed log-ins for this account from this address, or from this
    address; ``retry_after`` is how many seconds to wait."""

    def __init__(self, retry_after: int = 60) -> None:
        super().__init__(f"Too many failed log-ins: try again in {retry_after} seconds",
                         headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return passwords.hasher().hash(password)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def get_office(session: Session, code: str) -> Office:
    office = session.get(Office, code.upper())
    if office is None:
        raise AccountError(f"unknown office {code!r}: see 'caseforum offices list'")
    return office


EMAIL_RE = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}\.?[A-Za-z0-9-]*")


def clean_email(text: str) -> str:
    """An e-mail address, or "" for none; refuses what is not one address."""
    text = (text or "").strip()
    if text and (not EMAIL_RE.fullmatch(text) or len(text) > 254):
        raise AccountError(
            f"email: {text[:60]!r} is not an e-mail address like name@office.example")
    return text


def create_user(
    session: Session,
    *,
    username: str,
    office_code: str,
    role: str,
    password: str | None,
    display_name: str = "",
    email: str = "",
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
        email=clean_email(email),
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
#
# Throttling is by (account, address): a guesser at one address slows down only
# itself, and the owner logging in from elsewhere is never locked out by it.
# After ``max_failures`` failures the pair must wait ``backoff_seconds`` after
# its last failure, twice as long after each further one (at most the window).
# One address is also limited across all accounts (``max_failures_per_address``).
#
# An attempt is recorded as a failure *before* the password is checked, in the
# same short transaction as the count (rows locked: SQLite's write lock, a
# PostgreSQL advisory lock per account and address), and removed if the password
# was right.  So parallel guesses cannot all pass the check before any of them
# is counted.


def _lock_key(*parts: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _wait_needed(session: Session, *, username: str, address: str, since: datetime,
                 max_failures: int, max_failures_per_address: int, backoff_seconds: int,
                 window_minutes: int, exclude: int | None = None) -> int:
    """Seconds this (account, address) must wait before its next guess; 0: go ahead."""
    now = utcnow()
    query = select(LoginFailure.at).where(
        LoginFailure.username == username, LoginFailure.address == address,
        LoginFailure.at >= since)
    if exclude is not None:
        query = query.where(LoginFailure.id != exclude)
    times = sorted(session.exec(query))
    by_address = session.exec(select(func.count()).select_from(LoginFailure).where(
        LoginFailure.address == address, LoginFailure.at >= since,
        LoginFailure.id != (exclude or 0))).one()
    if by_address >= max_failures_per_address:
        oldest = session.exec(select(func.min(LoginFailure.at)).where(
            LoginFailure.address == address, LoginFailure.at >= since)).one()
        return max(1, int((oldest + timedelta(minutes=window_minutes) - now).total_seconds()))
    if len(times) < max_failures:
        return 0
    extra = len(times) - max_failures
    wait = min(backoff_seconds * 2 ** min(extra, 30), window_minutes * 60)
    ready = times[-1] + timedelta(seconds=wait)
    return max(0, int((ready - now).total_seconds()) + (1 if ready > now else 0))


def _reserve_attempt(session: Session, *, username: str, address: str, **limits: int) -> int:
    """Count this attempt as a failure, atomically with the check; returns its row
    id.  Raise :class:`Throttled` (recording nothing) when the pair must wait."""
    since = utcnow() - timedelta(minutes=limits["window_minutes"])
    # cheap early answer without a write (the locked check below decides)
    wait = _wait_needed(session, username=username, address=address, since=since, **limits)
    if wait:
        session.rollback()
        raise Throttled(wait)
    if session.get_bind().dialect.name == "postgresql":
        for key in (_lock_key("address", address), _lock_key(username, address)):
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    attempt = LoginFailure(username=username, address=address)
    session.add(attempt)
    session.flush()  # on SQLite this takes the write lock: one check at a time
    wait = _wait_needed(session, username=username, address=address, since=since,
                        exclude=attempt.id, **limits)
    if wait:
        session.rollback()
        raise Throttled(wait)
    session.commit()
    return attempt.id or 0


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    address: str,
    max_failures: int = 5,
    max_failures_per_address: int = 30,
    window_minutes: int = 15,
    backoff_seconds: int = 30,
) -> User | None:
    """Check a password.  Raise :class:`Throttled` when this account and address
    (or this address) must wait; a failure is recorded (and committed) even
    though the caller gets ``None``.  On success the pair's failures are
    forgotten in the caller's transaction."""
    username = username.strip().lower()
    _reserve_attempt(
        session, username=username, address=address, max_failures=max_failures,
        max_failures_per_address=max_failures_per_address, window_minutes=window_minutes,
        backoff_seconds=backoff_seconds)
    user = session.exec(select(User).where(User.username == username)).first()
    ok = False
    try:
        if user and user.password_hash and user.is_active:
            ok = passwords.hasher().verify(user.password_hash, password)
        else:
            passwords.hasher().verify(passwords.dummy_hash(), password + "x")  # same cost
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        emit(session, kind="account.login_failed", subject_type="user",
             subject_id=user.id if user else "",
             payload={"user_id": user.id if user else None,
                      "detail": f"{username} from {address}"})
        session.commit()
        return None
    session.execute(delete(LoginFailure).where(
        LoginFailure.username == username, LoginFailure.address == address))
    if passwords.hasher().check_needs_rehash(user.password_hash or ""):
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


class TokenRejected(errors.Unauthorized):
    """The bearer token is unknown, revoked or expired; the message says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


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
