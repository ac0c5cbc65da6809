"""Dossier cards: the box a number in a post turns into, for each viewer.

A thread page may mention twenty dossiers two hundred times.  Loading each
card's family, documents and citations on its own cost four statements per
card, so the work is split in two steps: ``prepare_references`` loads what
every card of the page needs in a fixed number of ``IN`` queries (whatever the
number of cards), through the same ``Access`` filters as everything else, and
keeps plain values per dossier in ``reference.page``; ``render_reference``
then only fills the template from those values.

A dossier carded earlier in the thread comes with ``reference.compact`` set:
it gets a one-line reference (number and title, from the dossier row the
forum looked up with the viewer's rights), which needs nothing loaded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import select

from caseforum import hookimpl
from caseforum.models import Application

PAGE_KEY = "dossier_cards"  # this plugin's slot in ``reference.page``
LATEST = 3  # documents listed on a card


@dataclass(frozen=True)
class CardDocument:
    id: int
    code: str
    date: date


@dataclass(frozen=True)
class CardFacts:
    """What one viewer's card shows about one dossier: plain values, no ORM rows."""

    office_code: str
    number: str
    display_number: str
    filing_date: date
    title: str
    applicants: tuple[str, ...]
    family_size: int
    citation_count: int
    latest: tuple[CardDocument, ...]


def load_facts(access: Any, apps: list[Application]) -> dict[int, CardFacts]:
    """Card facts for every visible dossier in ``apps``: one query for the
    families, one for the documents (plus one for the named offices of
    restricted ones) and one for the citations."""
    apps = [a for a in apps if access.can_see(a)]
    if not apps:
        return {}
    family_ids = {a.family_id for a in apps if a.family_id is not None}
    family_size: dict[int, int] = defaultdict(int)
    if family_ids:
        for member in access.session.exec(select(Application.family_id,
                                                 Application.office_code).where(
                Application.family_id.in_(family_ids))):  # type: ignore[union-attr]
            if access.can_see(member):
                family_size[member.family_id] += 1
    docs_of: dict[int, list[Any]] = defaultdict(list)
    for doc in access.document_briefs(apps):  # visible ones only, oldest first
        docs_of[doc.application_id].append(doc)
    citations = access.citation_count(
        apps, {app_id: {d.id for d in docs} for app_id, docs in docs_of.items()})
    facts = {}
    for app in apps:
        latest = sorted(docs_of[app.id or 0], key=lambda d: (d.date, d.id), reverse=True)
        facts[app.id or 0] = CardFacts(
            office_code=app.office_code, number=app.number, display_number=app.display_number,
            filing_date=app.filing_date, title=app.title, applicants=tuple(app.applicants),
            family_size=family_size[app.family_id] if app.family_id is not None else 1,
            citation_count=citations[app.id or 0],
            latest=tuple(CardDocument(id=d.id or 0, code=d.code, date=d.date)
                         for d in latest[:LATEST]))
    return facts


def _page_facts(reference: Any) -> dict[int, CardFacts]:
    page = getattr(reference, "page", None)
    if page is None:
        return {}
    return page.setdefault(PAGE_KEY, {})


@hookimpl
def prepare_references(references: list[Any], viewer: Any) -> None:
    """Load the facts of every card of the page at once (see the module docstring)."""
    wanted = [r for r in references if getattr(r, "app", None) is not None
              and not getattr(r, "compact", False)]
    if not wanted:
        return
    facts = _page_facts(wanted[0])
    apps = {r.app.id: r.app for r in wanted if r.app.id not in facts}
    if apps:
        facts.update(load_facts(wanted[0].access, list(apps.values())))


@hookimpl
def render_reference(reference: Any, viewer: Any) -> str | None:
    app = getattr(reference, "app", None)
    if app is None:
        return None
    if getattr(reference, "compact", False):
        return reference.env.get_template("partials/dossier_ref.html").render(app=app)
    facts = _page_facts(reference)
    card = facts.get(app.id)
    if card is None:  # a caller that did not prepare: load this one card alone
        card = load_facts(reference.access, [app]).get(app.id)
        if card is None:
            return None
    return reference.env.get_template("partials/dossier_card.html").render(
        app=card, family_size=card.family_size, latest=card.latest,
        citation_count=card.citation_count)
