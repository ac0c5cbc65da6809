"""Who may do what with exchanges (registered with ``caseforum.authz``).

Only users of the two offices of an exchange see it. A platform administrator
sees that an exchange exists and where it stands, never its application,
messages or documents. API tokens need the ``ice`` scope.
"""

from __future__ import annotations

from typing import Any

from caseforum.authz import Viewer, rule

WORKING_ROLES = frozenset({"examiner", "office_admin", "bot"})


def _party(viewer: Viewer, exchange: Any) -> bool:
    if not viewer.is_authenticated or exchange is None:
        return False
    return viewer.office_code in (getattr(exchange, "recipient_office", None),
                                  getattr(exchange, "donor_office", None))


@rule("ice.exchanges.list", scope="ice")
def _list(viewer: Viewer, obj: Any) -> bool:
    """The exchange list: every signed-in user (it shows only what each may see)."""
    return viewer.is_authenticated


@rule("ice.exchanges.list_all", scope="ice")
def _list_all(viewer: Viewer, obj: Any) -> bool:
    """Every exchange of the instance in the list (state only, see below):
    platform administrators."""
    return viewer.is_authenticated and viewer.role == "platform_admin"


@rule("ice.exchange.view", scope="ice")
def _view(viewer: Viewer, exchange: Any) -> bool:
    """Content: application, messages, documents, audit trail: the two offices only."""
    return _party(viewer, exchange)


@rule("ice.exchange.view_state", scope="ice")
def _view_state(viewer: Viewer, exchange: Any) -> bool:
    """Existence and state: the two offices, and platform administrators."""
    return _party(viewer, exchange) or (exchange is not None and _list_all(viewer, None))


@rule("ice.exchange.create", scope="ice")
def _create(viewer: Viewer, office: Any) -> bool:
    """Open a request: working users of an office that takes part as a recipient."""
    role = str(getattr(getattr(office, "ice_role", None), "value", getattr(office, "ice_role", "")))
    return (viewer.role in WORKING_ROLES and office is not None
            and getattr(office, "code", None) == viewer.office_code
            and role in ("recipient", "both"))


@rule("ice.exchange.act", scope="ice")
def _act(viewer: Viewer, exchange: Any) -> bool:
    """Take a workflow step or send documents for one's own office."""
    return viewer.role in WORKING_ROLES and _party(viewer, exchange)


@rule("ice.exchange.assign", scope="ice")
def _assign(viewer: Viewer, exchange: Any) -> bool:
    """Hand the exchange to anyone of one's office, or clear the assignment:
    office administrators (anyone who may act can take it on themselves)."""
    return viewer.role == "office_admin" and _party(viewer, exchange)
