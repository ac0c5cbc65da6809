"""Who may do what: the one place that decides.

Every route, page, download, card, search result, notification and push asks
:func:`can` (or :func:`require`).  Rules are keyed by action name; an unknown
action is a programming error and raises, so nothing is allowed by accident.
A caller authenticated by API token is further limited to the token's scopes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from caseforum import errors
from caseforum.i18n import N_
from caseforum.models import Office, User
from caseforum.models.account import Role

SCOPES: dict[str, str] = {
    "dossiers:read": "read dossiers, documents and citations",
    "dossiers:write": "upload dossiers, documents and citations for the token's office",
    "forum": "read and write forum threads and posts",
    "ice": "take part in ICE exchanges of the token's office",
    "admin": "manage offices, users, tokens and plugins (within the user's rights)",
}


@dataclass(frozen=True)
class Viewer:
    """The caller as authorization sees it; ``None`` fields mean anonymous."""

    user_id: int | None = None
    username: str = ""
    office_code: str | None = None
    role: str | None = None
    providing: bool = False
    accessing: bool = False
    scopes: frozenset[str] | None = None  # None: a browser session, all of the role's rights
    #: how the viewer reads, for what is rendered outside their own request (a live
    #: socket's fragments): an interface language code and an IANA zone, worked out at
    #: the socket's handshake; empty: the instance default.  No rule looks at them, so
    #: :attr:`profile` leaves them out; they count in equality, so the live hub keeps
    #: viewers who read differently apart.
    language: str = ""
    time_zone: str = ""

    @classmethod
    def of(cls, user: User | None, office: Office | None,
           scopes: frozenset[str] | None = None) -> Viewer:
        if user is None or not user.is_active:
            return ANONYMOUS
        return cls(
            user_id=user.id,
            username=user.username,
            office_code=user.office_code,
            role=str(user.role),
            providing=bool(office and office.providing),
            accessing=bool(office and office.accessing),
            scopes=scopes,
        )

    def __hash__(self) -> int:
        """Computed once: viewers key the live hub's fragments, so each is hashed for
        every socket of every event (a generated hash would hash all fields each time)."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.user_id, self.username, self.office_code, self.role,
                           self.providing, self.accessing, self.scopes, self.language,
                           self.time_zone))
            object.__setattr__(self, "_hash", cached)
        return cached

    def reading(self, language: str, time_zone: str) -> Viewer:
        """The same viewer reading in ``language`` and ``time_zone``."""
        if (language, time_zone) == (self.language, self.time_zone):
            return self
        return replace(self, language=language, time_zone=time_zone)

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def profile(self) -> tuple[Any, ...]:
        """What decides what this viewer may see; equal profiles see the same
        (a token's scopes count: a forum-only token sees no dossier cards)."""
        cached = self.__dict__.get("_profile")
        if cached is None:  # computed once, like the hash: asked for every socket
            scopes = tuple(sorted(self.scopes)) if self.scopes is not None else None
            cached = (self.office_code, self.role, self.providing, self.accessing, scopes)
            object.__setattr__(self, "_profile", cached)
        return cached


ANONYMOUS = Viewer()
#: a rule with this scope accepts a token of any scope; ``None`` accepts none
ANY_SCOPE = "*"

Rule = Callable[[Viewer, Any], bool]
_RULES: dict[str, tuple[str | None, Rule]] = {}


def rule(action: str, *, scope: str | None) -> Callable[[Rule], Rule]:
    """Register the rule for ``action``; ``scope`` is what an API token needs."""

    def decorate(func: Rule) -> Rule:
        if action in _RULES:
            raise ValueError(f"rule for {action!r} defined twice")
        _RULES[action] = (scope, func)
        return func

    return decorate


def actions() -> list[str]:
    return sorted(_RULES)


def can(viewer: Viewer | None, action: str, obj: Any = None) -> bool:
    if action not in _RULES:
        raise ValueError(f"no authorization rule for action {action!r}")
    viewer = viewer or ANONYMOUS
    scope, func = _RULES[action]
    if viewer.scopes is not None and scope != ANY_SCOPE and (
        scope is None or scope not in viewer.scopes
    ):
        return False
    return bool(func(viewer, obj))


def require(viewer: Viewer | None, action: str, obj: Any = None, *, hide: bool = False) -> None:
    """Raise 404 (``hide``: do not reveal that it exists) or 401/403 when not allowed."""
    if can(viewer, action, obj):
        return
    if hide:
        raise errors.NotFound(N_("Not found"))
    if viewer is None or not viewer.is_authenticated:
        raise errors.Unauthorized(N_("Log in first"))
    raise errors.Forbidden(N_("You are not allowed to do this"))


def _is(viewer: Viewer, *roles: Role) -> bool:
    return any(viewer.role == r.value for r in roles)


def _office_of(obj: Any) -> str | None:
    return getattr(obj, "office_code", None) or getattr(obj, "code", None)


# Account and administration rules ------------------------------------------


@rule("admin.view", scope="admin")
def _admin_view(viewer: Viewer, obj: Any) -> bool:
    return _is(viewer, Role.office_admin, Role.platform_admin)


@rule("metrics.view", scope="admin")
def _metrics_view(viewer: Viewer, obj: Any) -> bool:
    """``/metrics`` shows figures of every office: platform admins only."""
    return _is(viewer, Role.platform_admin)


@rule("plugins.manage", scope="admin")
def _plugins_manage(viewer: Viewer, obj: Any) -> bool:
    return _is(viewer, Role.platform_admin)


@rule("offices.manage", scope="admin")
def _offices_manage(viewer: Viewer, obj: Any) -> bool:
    """Add offices and change their roles: the platform's business."""
    return _is(viewer, Role.platform_admin)


@rule("office.edit", scope="admin")
def _office_edit(viewer: Viewer, office: Any) -> bool:
    """Settings an office decides for itself (public access)."""
    if _is(viewer, Role.platform_admin):
        return True
    return _is(viewer, Role.office_admin) and _office_of(office) == viewer.office_code


@rule("users.list", scope="admin")
def _users_list(viewer: Viewer, office: Any) -> bool:
    if _is(viewer, Role.platform_admin):
        return True
    return _is(viewer, Role.office_admin) and (
        office is None or _office_of(office) == viewer.office_code
    )


@rule("users.list_all", scope="admin")
def _users_list_all(viewer: Viewer, obj: Any) -> bool:
    """Users, tokens and account history of every office (not only one's own)."""
    return _is(viewer, Role.platform_admin)


@rule("user.manage", scope="admin")
def _user_manage(viewer: Viewer, user: Any) -> bool:
    """Create, disable, re-enable a user; office admins only within their office
    and never a platform admin."""
    if _is(viewer, Role.platform_admin):
        return True
    return (
        _is(viewer, Role.office_admin)
        and getattr(user, "office_code", None) == viewer.office_code
        and str(getattr(user, "role", "")) != str(Role.platform_admin)
    )


@rule("token.create", scope="admin")
def _token_create(viewer: Viewer, user: Any) -> bool:
    if user is not None and getattr(user, "id", None) == viewer.user_id:
        return viewer.is_authenticated
    return _user_manage(viewer, user)


@rule("home.view", scope=None)
def _home_view(viewer: Viewer, obj: Any) -> bool:
    return viewer.is_authenticated


@rule("me.view", scope=ANY_SCOPE)
def _me_view(viewer: Viewer, obj: Any) -> bool:
    return viewer.is_authenticated


# Dossier rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class DossierTarget:
    """What decides who may see a dossier: its providing office and whether
    that office lets the public in."""

    office_code: str
    public_access: bool


@dataclass(frozen=True)
class DocumentTarget:
    office_code: str  # the providing office
    public_access: bool
    visibility: str  # public | offices | restricted
    offices: frozenset[str] = frozenset()


@rule("dossier.lookup", scope="dossiers:read")
def _dossier_lookup(viewer: Viewer, obj: Any) -> bool:
    """Looking a number up may ask remote dossier sources: users and tokens only
    (what the answer lists is filtered by ``dossier.view``)."""
    return viewer.is_authenticated


@rule("dossier.view", scope="dossiers:read")
def _dossier_view(viewer: Viewer, target: DossierTarget) -> bool:
    """Own office always; other offices' dossiers only for accessing offices;
    anonymous visitors where the providing office allows public access."""
    if viewer.is_authenticated:
        return viewer.office_code == target.office_code or viewer.accessing
    return target.public_access


@rule("document.view", scope="dossiers:read")
def _document_view(viewer: Viewer, doc: DocumentTarget) -> bool:
    if viewer.is_authenticated and viewer.office_code == doc.office_code:
        return True
    if not viewer.is_authenticated:
        return doc.visibility == "public" and doc.public_access
    if not viewer.accessing:
        return False
    if doc.visibility in ("public", "offices"):
        return True
    return doc.visibility == "restricted" and viewer.office_code in doc.offices


@dataclass(frozen=True)
class CitationTarget:
    """A citation in a dossier the viewer may see: taken from one of its documents
    (``document_visible``: whether the viewer may see that document), or entered
    for the dossier as a whole (``from_document`` false)."""

    from_document: bool
    document_visible: bool = False


@rule("citation.view", scope="dossiers:read")
def _citation_view(viewer: Viewer, citation: CitationTarget) -> bool:
    """A document's citations go with the document.  One entered for the whole
    dossier comes from the office's file rather than from a document it marked
    public: members who see the dossier get it, anonymous visitors do not."""
    if citation.from_document:
        return citation.document_visible
    return viewer.is_authenticated


@rule("dossier.provide", scope="dossiers:write")
def _dossier_provide(viewer: Viewer, office_code: Any) -> bool:
    """Providing offices put dossiers in, each for its own office code only."""
    return (
        viewer.is_authenticated
        and viewer.providing
        and viewer.office_code == office_code
        and _is(viewer, Role.examiner, Role.office_admin, Role.bot)
    )


@rule("stats.view", scope="dossiers:read")
def _stats_view(viewer: Viewer, office_code: Any) -> bool:
    """Office admins see their own office's statistics, platform admins all."""
    if _is(viewer, Role.platform_admin):
        return True
    return _is(viewer, Role.office_admin) and (
        office_code is None or office_code == viewer.office_code
    )


@rule("stats.view_all", scope="dossiers:read")
def _stats_view_all(viewer: Viewer, obj: Any) -> bool:
    """Choose any office's figures, or the whole platform's: platform admins only
    (an office admin's statistics are always their own office's)."""
    return _is(viewer, Role.platform_admin)


# Forum rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class ForumPolicy:
    """Two product decisions each instance makes, from its settings
    (``forum_platform_admins_read_all``, ``forum_office_admins_moderate_open``).

    Module-wide rather than per viewer, because viewers are also built far from
    any request (mentions, notifications, bots) and must be judged alike.
    """

    #: platform admins read (and so moderate) categories limited to other offices
    platform_admins_read_all: bool = True
    #: office admins moderate threads of categories open to every office
    office_admins_moderate_open: bool = True


_forum_policy = ForumPolicy()


def set_forum_policy(policy: ForumPolicy) -> ForumPolicy:
    """Install ``policy`` (the app does at start); returns the previous one so a
    test can put it back."""
    global _forum_policy
    previous, _forum_policy = _forum_policy, policy
    return previous


def forum_policy() -> ForumPolicy:
    return _forum_policy


@dataclass(frozen=True)
class CategoryTarget:
    """``offices`` empty: every participating office."""

    offices: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ThreadTarget:
    category: CategoryTarget | None  # None: a private conversation
    is_private: bool = False
    participants: frozenset[int] = frozenset()
    locked: bool = False
    author_id: int | None = None


@dataclass(frozen=True)
class PostTarget:
    thread: ThreadTarget
    author_id: int
    hidden: bool = False


def _moderator(viewer: Viewer) -> bool:
    return _is(viewer, Role.platform_admin, Role.office_admin)


@rule("forum.view", scope="forum")
def _forum_view(viewer: Viewer, obj: Any) -> bool:
    return viewer.is_authenticated


@rule("category.view", scope="forum")
def _category_view(viewer: Viewer, category: CategoryTarget) -> bool:
    """Open categories: every signed-in user; limited ones: their offices, and
    platform admins when ``ForumPolicy.platform_admins_read_all``."""
    if not viewer.is_authenticated:
        return False
    if not category.offices or viewer.office_code in category.offices:
        return True
    return _is(viewer, Role.platform_admin) and _forum_policy.platform_admins_read_all


@rule("category.create", scope="forum")
def _category_create(viewer: Viewer, obj: Any) -> bool:
    return _is(viewer, Role.platform_admin)


@rule("thread.view", scope="forum")
def _thread_view(viewer: Viewer, thread: ThreadTarget) -> bool:
    if not viewer.is_authenticated:
        return False
    if thread.is_private:
        return viewer.user_id in thread.participants
    return thread.category is not None and _category_view(viewer, thread.category)


@rule("thread.create", scope="forum")
def _thread_create(viewer: Viewer, category: CategoryTarget) -> bool:
    return _category_view(viewer, category) and not _is(viewer, Role.bot)


@rule("post.create", scope="forum")
def _post_create(viewer: Viewer, thread: ThreadTarget) -> bool:
    if not _thread_view(viewer, thread):
        return False
    return not thread.locked or _forum_moderate(viewer, thread)  # who may unlock it


@rule("post.view", scope="forum")
def _post_view(viewer: Viewer, post: PostTarget) -> bool:
    """A post is readable where its thread is (a hidden one shows as hidden)."""
    return _thread_view(viewer, post.thread)


@rule("post.history", scope="forum")
def _post_history(viewer: Viewer, post: PostTarget) -> bool:
    """Earlier versions of a post; of a hidden post, for its moderators only."""
    if not _thread_view(viewer, post.thread):
        return False
    return not post.hidden or _forum_moderate(viewer, post.thread)


@rule("post.edit", scope="forum")
def _post_edit(viewer: Viewer, post: PostTarget) -> bool:
    """Authors edit their own posts while the thread is open."""
    return (_thread_view(viewer, post.thread) and post.author_id == viewer.user_id
            and not post.thread.locked and not post.hidden)


@rule("post.react", scope="forum")
def _post_react(viewer: Viewer, post: PostTarget) -> bool:
    return _thread_view(viewer, post.thread) and not post.hidden and not _is(viewer, Role.bot)


@rule("post.flag", scope="forum")
def _post_flag(viewer: Viewer, post: PostTarget) -> bool:
    return _thread_view(viewer, post.thread) and post.author_id != viewer.user_id


@rule("forum.moderate", scope="forum")
def _forum_moderate(viewer: Viewer, thread: ThreadTarget | None) -> bool:
    """Hide posts, lock and pin threads, review flags: platform and office admins
    in threads they may read (never private conversations they are not part of);
    in categories open to every office, office admins only when
    ``ForumPolicy.office_admins_moderate_open``."""
    if not _moderator(viewer):
        return False
    if thread is None:
        return True
    if not _thread_view(viewer, thread):
        return False
    open_category = thread.category is not None and not thread.category.offices
    return not (open_category and _is(viewer, Role.office_admin)
                and not _forum_policy.office_admins_moderate_open)
