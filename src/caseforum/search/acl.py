"""Who may find what: access tokens stored with each indexed item.

Search must not reveal a hidden item through a count, a facet or a snippet, so
the permission check runs *inside* the query: each item carries the tokens that
grant it (``acl``) and a viewer's query is filtered to the tokens the viewer
holds.  Both sides are derived here from the facts the authorization rules of
:mod:`caseforum.authz` read (providing office and its public access, document
visibility and named offices, category offices, conversation members), and
``tests/test_search_permissions.py`` checks, viewer by viewer and item by item,
that a token match is exactly what ``authz.can`` answers.  What may change
without touching the items (an office's public access or roles, a user's role)
is applied on the viewer's side, at query time.
"""

from __future__ import annotations

from collections.abc import Iterable

from caseforum.authz import SCOPES, Viewer, forum_policy
from caseforum.models.account import Role


def _has_scope(viewer: Viewer, scope: str) -> bool:
    return viewer.scopes is None or scope in viewer.scopes


def dossier_tokens(office: str) -> set[str]:
    """A dossier: its own office, every accessing office, the public where allowed."""
    return {f"own:{office}", "accessing", f"public:{office}"}


def document_tokens(office: str, visibility: str, named: Iterable[str]) -> set[str]:
    tokens = {f"own:{office}"}
    if visibility in ("public", "offices"):
        tokens.add("accessing")
    if visibility == "public":
        tokens.add(f"publicdoc:{office}")
    if visibility == "restricted":
        tokens |= {f"named:{code}" for code in named}
    return tokens


def thread_tokens(*, is_private: bool, participants: Iterable[int],
                  category_offices: Iterable[str] | None) -> set[str]:
    """``category_offices`` None: no category (only a private conversation is readable)."""
    if is_private:
        return {f"user:{uid}" for uid in participants}
    if category_offices is None:
        return set()
    offices = set(category_offices)
    if not offices:
        return {"forum"}
    return {f"cat:{code}" for code in offices} | {"cat:*"}


def party_tokens(scope: str, parties: Iterable[str]) -> set[str]:
    """A plugin's item (an ICE exchange): users of the named offices whose session or
    token has ``scope``."""
    return {f"party:{scope}:{code}" for code in parties}


def viewer_tokens(viewer: Viewer, public_offices: Iterable[str]) -> set[str]:
    """The tokens ``viewer`` holds; ``public_offices``: offices open to the public."""
    tokens: set[str] = set()
    if _has_scope(viewer, "dossiers:read"):
        if viewer.is_authenticated:
            tokens.add(f"own:{viewer.office_code}")
            if viewer.accessing:
                tokens |= {"accessing", f"named:{viewer.office_code}"}
        else:
            for code in public_offices:
                tokens |= {f"public:{code}", f"publicdoc:{code}"}
    if _has_scope(viewer, "forum") and viewer.is_authenticated:
        tokens |= {"forum", f"cat:{viewer.office_code}", f"user:{viewer.user_id}"}
        if viewer.role == Role.platform_admin.value and forum_policy().platform_admins_read_all:
            tokens.add("cat:*")
    if viewer.is_authenticated:
        scopes = viewer.scopes if viewer.scopes is not None else SCOPES
        tokens |= {f"party:{scope}:{viewer.office_code}" for scope in scopes}
    return tokens
