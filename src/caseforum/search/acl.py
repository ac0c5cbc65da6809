"""Who may find what: access tokens stored with each indexed item.

Search must not reveal a hidden item through a count, a facet or a snippet, so
the permission check runs *inside* the query: each item carries the tokens that
grant it (``acl``) and a viewer's query is filtered to the tokens the viewer
holds.  Both sides are derived here from the facts the authorization rules of
:mod:`caseforum.authz` read (providing office and its public access, document
visibility and named offices, conversation members), and
``tests/test_search_permissions.py`` checks, viewer by viewer and item by item,
that a token match is exactly what ``authz.can`` answers.

What may change without touching the items is applied on the viewer's side, at
query time: an office's public access or roles, a user's role, and which
categories a viewer may read (an item names its category, ``category:12``, never
the category's offices, so a category's offices or office group may change without
re-indexing a single thread).  What does change an item's tokens (a document's
visibility, a conversation's members) is re-indexed from its event, and until the
indexer has applied that event :mod:`caseforum.search.grants` decides those items
from the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from caseforum.authz import SCOPES, CategoryTarget, Viewer, can


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
                  category_id: int | None) -> set[str]:
    """``category_id`` None: no category (only a private conversation is readable)."""
    if is_private:
        return {f"user:{uid}" for uid in participants}
    return set() if category_id is None else {f"category:{category_id}"}


def party_tokens(scope: str, parties: Iterable[str]) -> set[str]:
    """A plugin's item (an ICE exchange): users of the named offices whose session or
    token has ``scope``."""
    return {f"party:{scope}:{code}" for code in parties}


def viewer_tokens(viewer: Viewer, public_offices: Iterable[str],
                  categories: Mapping[int, CategoryTarget]) -> set[str]:
    """The tokens ``viewer`` holds; ``public_offices``: offices open to the public;
    ``categories``: every forum category with its offices (the rules pick those the
    viewer may read)."""
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
        tokens.add(f"user:{viewer.user_id}")
        tokens |= {f"category:{cid}" for cid, target in categories.items()
                   if can(viewer, "category.view", target)}
    if viewer.is_authenticated:
        scopes = viewer.scopes if viewer.scopes is not None else SCOPES
        tokens |= {f"party:{scope}:{viewer.office_code}" for scope in scopes}
    return tokens
