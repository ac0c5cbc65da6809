"""Who follows what: creating subscriptions, choosing channels, finding followers.

Kinds and targets: ``application`` and ``family`` (any form of an application or
publication number, or the id), ``office`` (an ST.3 code), ``thread`` and
``category`` (ids).  Levels:

* ``watching``: every new document or post, through the subscription's channels;
* ``tracking``: the same, but in the in-app bell only (no e-mail, no webhook);
* ``muted``: nothing, and it silences a broader subscription (a muted thread in a
  watched category, a muted application in a watched office or family).

For an office, ``direction`` says which documents: ``outgoing`` are the office's
own dossiers' documents, ``incoming`` other offices' documents in families
where the office has a member; ``documents`` narrows to search or examination
reports (the document type's group).  Mentions, replies and private messages
always notify; their channels are the user's choice per kind
(:class:`~caseforum.models.ChannelChoice`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from caseforum import errors
from caseforum.authz import Viewer, can
from caseforum.dossiers.access import Access
from caseforum.dossiers.lookup import find_dossiers
from caseforum.forum.access import access_category, access_thread
from caseforum.models import (
    Application,
    ChannelChoice,
    Office,
    Subscription,
    Thread,
    User,
    WebhookEndpoint,
)
from caseforum.numbers import NumberError

KINDS = ("application", "family", "office", "thread", "category")
PERSONAL = ("mention", "reply", "message", "ice")
DOCUMENTS = ("search", "examination", "all")
DIRECTIONS = ("incoming", "outgoing", "all")
LEVELS = ("watching", "tracking", "muted")
DIGESTS = ("immediate", "daily", "weekly")


class SubscriptionError(errors.InvalidInput):
    """Bad subscription input; the message says what to send instead."""


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    value = (value or "").strip().lower()
    if value not in allowed:
        raise SubscriptionError(f"{field}: use one of {', '.join(allowed)} (got {value!r})")
    return value


def clean_channels(names: Iterable[str], known: Iterable[str]) -> list[str]:
    known = list(known)
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name not in known:
            raise SubscriptionError(
                f"channels: {name!r} is not available; use {', '.join(known) or 'none'}")
        if name not in out:
            out.append(name)
    return out


@dataclass
class Target:
    key: str
    label: str
    link: str


def resolve_target(session: Session, viewer: Viewer, kind: str, text: str) -> Target:
    """The followed object's key, as the viewer may see it; "not found" for
    hidden and missing alike."""
    text = (text or "").strip()
    if not text:
        raise SubscriptionError("target: give a number, an office code or an id")
    if kind == "office":
        office = session.get(Office, text.upper())
        if office is None:
            raise errors.NotFound(f"target: no office {text.upper()!r}")
        return Target(office.code, f"{office.code} · {office.name}", f"/offices/{office.code}")
    if kind in ("thread", "category"):
        if not text.isdigit():
            raise SubscriptionError(f"target: a {kind} is given by its id (a number)")
        if kind == "thread":
            thread = access_thread(session, viewer, int(text))
            return Target(str(thread.id), thread.title, f"/threads/{thread.id}")
        category = access_category(session, viewer, int(text))
        return Target(str(category.id), category.name, f"/forum/c/{category.id}")
    app = _find_application(session, viewer, text)
    if kind == "application":
        return Target(str(app.id), f"{app.office_code} {app.display_number}",
                      f"/dossiers/{app.office_code}/{app.number}")
    if app.family_id is None:
        raise SubscriptionError(f"target: {app.office_code} {app.display_number} has no family")
    return Target(str(app.family_id), f"family of {app.office_code} {app.display_number}",
                  f"/dossiers/{app.office_code}/{app.number}")


def _find_application(session: Session, viewer: Viewer, text: str) -> Application:
    access = Access(session, viewer)
    if text.isdigit() and len(text) <= 9:
        app = session.get(Application, int(text))
        if app is not None and access.can_see(app):
            return app
    try:
        found = find_dossiers(session, access, text)
    except NumberError as exc:
        raise SubscriptionError(f"target: {exc}") from None
    if not found:
        raise errors.NotFound(f"target: no dossier {text!r}")
    return found[0]


def subscribe(session: Session, *, user: User, viewer: Viewer, kind: str, target: str,
              documents: str = "all", direction: str = "all", level: str = "watching",
              channels: Iterable[str] = ("inapp",),
              known_channels: Iterable[str] = ("inapp",), for_office: str = "") -> Subscription:
    """Create the subscription, or update the one the user has on that target.
    With ``for_office`` (its administrators only) it is the office's default."""
    kind = _choice(kind, KINDS, "kind")
    for_office = (for_office or "").strip().upper()
    if for_office and not can(viewer, "office.edit", session.get(Office, for_office)):
        raise errors.Forbidden(f"for_office: only {for_office}'s administrators set its defaults")
    found = resolve_target(session, viewer, kind, target)
    chosen = clean_channels(channels, known_channels)
    # (an office default: each user's own address and endpoints decide what reaches them)
    if not for_office and "email" in chosen and not user.email:
        raise SubscriptionError("channels: add your e-mail address on the settings page first")
    if not for_office and "webhook" in chosen and session.exec(select(WebhookEndpoint.id).where(
            WebhookEndpoint.user_id == user.id)).first() is None:
        raise SubscriptionError("channels: add a webhook endpoint on the settings page first")
    sub = session.exec(select(Subscription).where(
        Subscription.user_id == user.id, Subscription.kind == kind,
        Subscription.target == found.key, Subscription.for_office == for_office)).first() \
        or Subscription(user_id=user.id or 0, kind=kind, target=found.key, for_office=for_office)
    sub.label = found.label[:300]
    sub.documents = _choice(documents, DOCUMENTS, "documents")
    sub.direction = _choice(direction, DIRECTIONS, "direction")
    sub.level = _choice(level, LEVELS, "level")
    sub.channels = " ".join(chosen)
    session.add(sub)
    session.flush()
    return sub


def unsubscribe(session: Session, *, viewer: Viewer, subscription_id: int) -> None:
    """Delete one of the viewer's own subscriptions ("not found" for anyone else's,
    as for a missing one); the caller commits."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or sub.user_id != viewer.user_id:
        raise errors.NotFound("no such subscription")
    session.delete(sub)


def channels_for(session: Session, user_id: int, kind: str) -> list[str]:
    row = session.get(ChannelChoice, (user_id, kind))
    return row.channels.split() if row else ["inapp"]


def set_channels(session: Session, user_id: int, kind: str, names: list[str]) -> None:
    row = session.get(ChannelChoice, (user_id, kind)) or ChannelChoice(user_id=user_id, kind=kind)
    row.channels = " ".join(names)
    session.add(row)


# Finding the followers of an event --------------------------------------------


@dataclass
class Follower:
    user: User
    sub: Subscription

    @property
    def channels(self) -> list[str]:
        if self.sub.level == "tracking":
            return ["inapp"]
        return self.sub.channel_list


def _subs(session: Session, pairs: list[tuple[str, str]]) -> list[Subscription]:
    if not pairs:
        return []
    clauses = [(col(Subscription.kind) == k) & (col(Subscription.target) == t) for k, t in pairs]
    return list(session.exec(select(Subscription).where(or_(*clauses))))


def _pick(session: Session, subs: list[Subscription], order: tuple[str, ...],
          skip_user: int | None) -> dict[int, Subscription]:
    """One subscription per user: the user's own before their office's defaults, and
    among those the most specific kind (so a mute there wins)."""
    best: dict[int, tuple[tuple[int, int], Subscription]] = {}

    def consider(user_id: int, sub: Subscription, rank: tuple[int, int]) -> None:
        held = best.get(user_id)
        if held is None or rank < held[0]:
            best[user_id] = (rank, sub)

    defaults = [s for s in subs if s.for_office]
    for sub in subs:
        if not sub.for_office:
            consider(sub.user_id, sub, (0, order.index(sub.kind)))
    if defaults:
        members: dict[str, list[int]] = {}
        for user_id, office in session.exec(select(User.id, User.office_code).where(
                col(User.office_code).in_({s.for_office for s in defaults}))):
            members.setdefault(office, []).append(user_id or 0)
        for sub in defaults:
            for user_id in members.get(sub.for_office, []):
                consider(user_id, sub, (1, order.index(sub.kind)))
    best.pop(skip_user or -1, None)
    return {uid: s for uid, (_, s) in best.items() if s.level != "muted"}


def _users(session: Session, ids: Iterable[int]) -> dict[int, User]:
    ids = list(ids)
    if not ids:
        return {}
    return {u.id or 0: u for u in session.exec(select(User).where(
        col(User.id).in_(ids), col(User.is_active).is_(True)))}


def document_followers(session: Session, *, app: Application, document_id: int, code: str,
                       group_of: Callable[[str], str], actor_id: int | None) -> list[Follower]:
    """Followers of a new document who may see it (judged once per viewer profile)."""
    pairs = [("application", str(app.id))]
    offices = {app.office_code}
    if app.family_id is not None:
        pairs.append(("family", str(app.family_id)))
        offices |= set(session.exec(select(Application.office_code).where(
            Application.family_id == app.family_id)))
    pairs += [("office", code_) for code_ in sorted(offices)]
    group = group_of(code)
    subs = []
    for sub in _subs(session, pairs):
        if sub.kind == "office":
            outgoing = sub.target == app.office_code
            if sub.direction == ("incoming" if outgoing else "outgoing"):
                continue
        if sub.documents != "all" and sub.documents != group:
            continue
        subs.append(sub)
    chosen = _pick(session, subs, ("application", "family", "office"), actor_id)
    users = _users(session, chosen)
    offices_by_code = {o.code: o for o in session.exec(select(Office))}
    seen: dict[Any, bool] = {}
    out = []
    for uid, sub in chosen.items():
        user = users.get(uid)
        if user is None or str(user.role) == "bot":
            continue
        viewer = Viewer.of(user, offices_by_code.get(user.office_code))
        if viewer.profile not in seen:
            seen[viewer.profile] = Access(session, viewer).document(document_id) is not None
        if seen[viewer.profile]:
            out.append(Follower(user, sub))
    return out


def post_followers(session: Session, *, thread: Thread, author_id: int,
                   can_read: Callable[[User], bool]) -> list[Follower]:
    """Followers of a thread (or its category) who may read it."""
    pairs = [("thread", str(thread.id))]
    if thread.category_id is not None:
        pairs.append(("category", str(thread.category_id)))
    chosen = _pick(session, _subs(session, pairs), ("thread", "category"), author_id)
    users = _users(session, chosen)
    return [Follower(users[uid], sub) for uid, sub in chosen.items()
            if uid in users and str(users[uid].role) != "bot" and can_read(users[uid])]


# One-click unsubscribe ------------------------------------------------------------

_UNSUBSCRIBE_SALT = "caseforum-unsubscribe"


def unsubscribe_token(secret_key: str, user_id: int) -> str:
    """A signed token naming the user: the link in every mail needs no log-in."""
    from itsdangerous import URLSafeSerializer

    return str(URLSafeSerializer(secret_key, salt=_UNSUBSCRIBE_SALT).dumps({"u": user_id}))


def read_unsubscribe_token(secret_key: str, token: str) -> int:
    from itsdangerous import BadSignature, URLSafeSerializer

    try:
        data = URLSafeSerializer(secret_key, salt=_UNSUBSCRIBE_SALT).loads(token)
        return int(data["u"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise errors.NotFound("this unsubscribe link is not valid") from None


def stop_email(session: Session, user_id: int) -> int:
    """Take e-mail out of every subscription and channel choice of the user, and
    drop the mails still waiting; returns how many settings changed."""
    from sqlalchemy import update

    from caseforum.models import Delivery

    changed = 0
    rows: list[Any] = [*session.exec(select(Subscription).where(
        Subscription.user_id == user_id)), *session.exec(select(ChannelChoice).where(
            ChannelChoice.user_id == user_id))]
    for row in rows:
        names = row.channels.split()
        if "email" in names:
            row.channels = " ".join(n for n in names if n != "email")
            session.add(row)
            changed += 1
    session.exec(update(Delivery).where(
        col(Delivery.user_id) == user_id, col(Delivery.channel) == "email",
        col(Delivery.state) == "pending").values(state="dropped", last_error="unsubscribed"))
    return changed


# Atom feeds ----------------------------------------------------------------------

_FEED_SALT = "caseforum-feed"


def feed_token(secret_key: str, sub: Subscription) -> str:
    """A signed token naming one subscription: feed readers carry no log-in."""
    from itsdangerous import URLSafeSerializer

    return str(URLSafeSerializer(secret_key, salt=_FEED_SALT).dumps(
        {"s": sub.id, "u": sub.user_id}))


def read_feed_token(session: Session, secret_key: str, token: str) -> Subscription:
    from itsdangerous import BadSignature, URLSafeSerializer

    try:
        data = URLSafeSerializer(secret_key, salt=_FEED_SALT).loads(token)
        sub = session.get(Subscription, int(data["s"]))
        owner = int(data["u"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise errors.NotFound("no such feed") from None
    if sub is None or sub.user_id != owner:
        raise errors.NotFound("no such feed")
    return sub
