"""The authorization matrix: every role against every account action."""

from __future__ import annotations

import pytest

from caseforum.authz import ANONYMOUS, Viewer, actions, can
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
    ("offices.manage", None, (False, False, False, True, False)),
    ("office.edit", JP, (False, False, True, True, False)),
    ("office.edit", KR, (False, False, False, True, False)),
    ("users.list", JP, (False, False, True, True, False)),
    ("users.list", KR, (False, False, False, True, False)),
    ("user.manage", JP_EXAMINER, (False, False, True, True, False)),
    ("user.manage", KR_EXAMINER, (False, False, False, True, False)),
    ("user.manage", JP_PLATFORM_ADMIN, (False, False, False, True, False)),
    ("token.create", KR_EXAMINER, (False, False, False, True, False)),
    ("home.view", None, (False, True, True, True, True)),
    ("me.view", None, (False, True, True, True, True)),
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
