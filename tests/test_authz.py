"""The authorization matrix: every role against every account action, and the
forum, statistics and ICE rules that used to be role tests in the routes."""

from __future__ import annotations

import pytest

from caseforum.authz import (
    ANONYMOUS,
    CategoryTarget,
    CitationTarget,
    ForumPolicy,
    PostTarget,
    ThreadTarget,
    Viewer,
    actions,
    can,
    forum_policy,
    set_forum_policy,
)
from caseforum.models import Office, User
from caseforum.models.account import Role

JP = Office(code="JP", name="JPO", providing=True, accessing=True)
KR = Office(code="KR", name="KIPO", providing=True, accessing=True)


def viewer(role: str | None, office: str = "JP", scopes: frozenset[str] | None = None) -> Viewer:
    if role is None:
        return ANONYMOUS
    return Viewer(user_id=1, username=f"{role}-{office}", office_code=office, role=role,
                  providing=True, accessing=True, scopes=scopes)


JP_EXAMINER = User(id=2, username="x", office_code="JP", role=Role.examiner)
KR_EXAMINER = User(id=3, username="y", office_code="KR", role=Role.examiner)
JP_PLATFORM_ADMIN = User(id=4, username="z", office_code="JP", role=Role.platform_admin)

# action, object, then who may: anonymous, examiner, office_admin, platform_admin, bot
MATRIX = [
    ("admin.view", None, (False, False, True, True, False)),
    ("plugins.manage", None, (False, False, False, True, False)),
    ("metrics.view", None, (False, False, False, True, False)),
    ("offices.manage", None, (False, False, False, True, False)),
    ("office.edit", JP, (False, False, True, True, False)),
    ("office.edit", KR, (False, False, False, True, False)),
    ("users.list", JP, (False, False, True, True, False)),
    ("users.list", KR, (False, False, False, True, False)),
    ("users.list_all", None, (False, False, False, True, False)),
    ("user.manage", JP_EXAMINER, (False, False, True, True, False)),
    ("user.manage", KR_EXAMINER, (False, False, False, True, False)),
    ("user.manage", JP_PLATFORM_ADMIN, (False, False, False, True, False)),
    ("token.create", KR_EXAMINER, (False, False, False, True, False)),
    ("home.view", None, (False, True, True, True, True)),
    ("me.view", None, (False, True, True, True, True)),
    # of a dossier the viewer sees: a document's citations go with the document;
    # those entered for the whole dossier are for members only
    ("citation.view", CitationTarget(True, document_visible=True), (True,) * 5),
    ("citation.view", CitationTarget(True, document_visible=False), (False,) * 5),
    ("citation.view", CitationTarget(False), (False, True, True, True, True)),
]
ROLES = [None, "examiner", "office_admin", "platform_admin", "bot"]


@pytest.mark.parametrize(("action", "obj", "expected"), MATRIX,
                         ids=[f"{a}-{getattr(o, 'code', getattr(o, 'username', ''))}"
                              for a, o, _ in MATRIX])
def test_role_matrix(action: str, obj: object, expected: tuple[bool, ...]) -> None:
    got = tuple(can(viewer(role), action, obj) for role in ROLES)
    assert got == expected


def test_matrix_covers_every_account_action() -> None:
    covered = {a for a, _, _ in MATRIX}
    missing = [a for a in actions() if a not in covered and not a.startswith(
        ("dossier", "document", "forum", "thread", "post", "category", "ice", "stats",
         "exchange", "notification", "bot"))]
    assert missing == []


def test_a_user_may_make_tokens_for_themselves() -> None:
    me = viewer("examiner")
    assert can(me, "token.create", User(id=1, username="me", office_code="JP"))


def test_token_scopes_narrow_the_role() -> None:
    admin_with_forum_token = viewer("platform_admin", scopes=frozenset({"forum"}))
    assert not can(admin_with_forum_token, "plugins.manage")
    assert can(admin_with_forum_token, "me.view")
    assert not can(admin_with_forum_token, "home.view")  # pages are for browser sessions
    admin_token = viewer("platform_admin", scopes=frozenset({"admin"}))
    assert can(admin_token, "plugins.manage")


def test_unknown_action_is_an_error_not_a_yes() -> None:
    with pytest.raises(ValueError, match="no authorization rule"):
        can(viewer("platform_admin"), "launch.rockets")


def test_inactive_user_is_anonymous() -> None:
    user = User(id=9, username="gone", office_code="JP", role=Role.platform_admin,
                is_active=False)
    assert Viewer.of(user, JP) is ANONYMOUS


# Forum, statistics and ICE ---------------------------------------------------------

OPEN = CategoryTarget()
JP_ONLY = CategoryTarget(frozenset({"JP"}))
KR_ONLY = CategoryTarget(frozenset({"KR"}))
IN_OPEN = ThreadTarget(category=OPEN, author_id=7)
IN_JP = ThreadTarget(category=JP_ONLY, author_id=7)
IN_KR = ThreadTarget(category=KR_ONLY, author_id=7)
LOCKED = ThreadTarget(category=OPEN, author_id=7, locked=True)
SHOWN = PostTarget(thread=IN_OPEN, author_id=7)
HIDDEN = PostTarget(thread=IN_OPEN, author_id=7, hidden=True)
ALL = (False, True, True, True, True)  # every signed-in role
ADMINS = (False, False, True, True, False)
PLATFORM = (False, False, False, True, False)
NOBODY = (False, False, False, False, False)

# action, label, object, (platform admins read all, office admins moderate open), who may
POLICY_MATRIX = [
    ("category.view", "open", OPEN, (True, True), ALL),
    ("category.view", "own-office", JP_ONLY, (True, True), ALL),
    ("category.view", "other-office", KR_ONLY, (True, True), PLATFORM),
    ("category.view", "other-office-read-all-off", KR_ONLY, (False, True), NOBODY),
    ("thread.view", "other-office-read-all-off", IN_KR, (False, True), NOBODY),
    ("forum.moderate", "open", IN_OPEN, (True, True), ADMINS),
    ("forum.moderate", "open-moderate-open-off", IN_OPEN, (True, False), PLATFORM),
    ("forum.moderate", "own-office-moderate-open-off", IN_JP, (True, False), ADMINS),
    ("forum.moderate", "other-office", IN_KR, (True, True), PLATFORM),
    ("forum.moderate", "other-office-read-all-off", IN_KR, (False, True), NOBODY),
    ("post.create", "locked", LOCKED, (True, True), ADMINS),
    ("post.create", "locked-moderate-open-off", LOCKED, (True, False), PLATFORM),
    ("post.view", "shown", SHOWN, (True, True), ALL),
    ("post.view", "hidden", HIDDEN, (True, True), ALL),  # shown as hidden
    ("post.history", "shown", SHOWN, (True, True), ALL),
    ("post.history", "hidden", HIDDEN, (True, True), ADMINS),
    ("post.history", "hidden-moderate-open-off", HIDDEN, (True, False), PLATFORM),
    ("stats.view_all", "", None, (True, True), PLATFORM),
    ("stats.view", "own-office", "JP", (True, True), ADMINS),
    ("stats.view", "other-office", "KR", (True, True), PLATFORM),
]


@pytest.fixture
def policy() -> object:
    """Set the forum policy for one test and put the previous one back."""
    previous = forum_policy()

    def use(read_all: bool, moderate_open: bool) -> None:
        set_forum_policy(ForumPolicy(platform_admins_read_all=read_all,
                                     office_admins_moderate_open=moderate_open))

    yield use
    set_forum_policy(previous)


@pytest.mark.parametrize(("action", "obj", "settings", "expected"),
                         [(a, o, p, e) for a, _, o, p, e in POLICY_MATRIX],
                         ids=[f"{a}-{label}" for a, label, _, _, _ in POLICY_MATRIX])
def test_forum_and_statistics_matrix(policy, action: str, obj: object,
                                     settings: tuple[bool, bool],
                                     expected: tuple[bool, ...]) -> None:
    policy(*settings)
    got = tuple(can(viewer(role), action, obj) for role in ROLES)
    assert got == expected


def test_ice_list_and_assignment_rules() -> None:
    pytest.importorskip("caseforum_ice_exchange.rules")  # registers the plugin's rules

    class Exchange:
        recipient_office = "JP"
        donor_office = "SG"

    assert tuple(can(viewer(r), "ice.exchanges.list_all") for r in ROLES) == PLATFORM
    assert tuple(can(viewer(r), "ice.exchange.assign", Exchange()) for r in ROLES) == (
        False, False, True, False, False)  # office admins of the two offices only
    assert not can(viewer("office_admin", "KR"), "ice.exchange.assign", Exchange())
    assert tuple(can(viewer(r, "KR"), "ice.exchange.view_state", Exchange())
                 for r in ROLES) == PLATFORM
