"""The number box: any form of an application, publication, priority or PCT number.

One parser (:func:`caseforum.numbers.read_number`) turns the text into
candidates, and one resolver (:func:`resolve`) finds the dossiers they name, in
two statements however many numbers are asked at once.  The number box, the
look-up API and the dossier cards of forum posts all go through both, so a
number in a post becomes a card exactly when the number box would find it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import or_
from sqlmodel import Session, select

from caseforum.dossiers.access import Access
from caseforum.models import Application, Office, Priority
from caseforum.numbers import MatchedAs, NumberError, NumberReading, read_number

#: (matched_as, office, normalised number): one way a dossier may answer a number
Candidate = tuple[MatchedAs, str, str]
#: the order matches are listed in: the number as the dossier's own first
_RANK: dict[str, int] = {"application": 0, "pct": 1, "publication": 2, "priority": 3}


@dataclass(frozen=True)
class Match:
    app: Application
    matched_as: MatchedAs


def known_offices(session: Session) -> set[str]:
    return set(session.exec(select(Office.code))) | {"EP", "WO", "DE", "FR"}


def candidates(reading: NumberReading) -> list[Candidate]:
    """Every way a dossier can answer ``reading``."""
    out: list[Candidate] = []
    app = reading.application
    if app is not None:
        out.append(("application", app.office, app.number))
        if app.kind == "pct":  # the national phases that entered from it
            out.append(("pct", app.office, app.number))
        out.append(("priority", app.office, app.number))
    pub = reading.publication
    if pub is not None:
        out.append(("publication", pub.office, pub.number))
    return out


def key_candidates(kind: str, office: str, number: str) -> list[Candidate]:
    """Candidates of a stored key without text (a bot's dossier embed): that dossier
    itself, not the family members that claim it or entered from it."""
    if kind == "publication":
        return [("publication", office, number)]
    return [("application", office, number)]


def resolve(session: Session,
            wanted: Mapping[Hashable, Sequence[Candidate]]) -> dict[Hashable, list[Match]]:
    """The dossiers answering each entry of ``wanted``, best match first, members of
    one family together.  Two statements for all entries together; no visibility
    check here (the callers filter with :class:`Access`)."""
    numbers = {n for cands in wanted.values() for _, _, n in cands}
    if not numbers:
        return {key: [] for key in wanted}
    pubs = {o + n for cands in wanted.values() for m, o, n in cands if m == "publication"}
    direct: dict[Candidate, list[Application]] = {}
    for app in session.exec(select(Application).where(or_(
            Application.number.in_(numbers),  # type: ignore[attr-defined]
            Application.publication_number.in_(pubs),  # type: ignore[attr-defined]
            Application.pct_number.in_(numbers)))):  # type: ignore[union-attr]
        direct.setdefault(("application", app.office_code, app.number), []).append(app)
        if app.pct_number:
            direct.setdefault(("pct", "IB", app.pct_number), []).append(app)
        pub = app.publication_number
        direct.setdefault(("publication", pub[:2], pub[2:]), []).append(app)
    if any(m == "priority" for cands in wanted.values() for m, _, _ in cands):
        for app, p_office, p_number in session.exec(
                select(Application, Priority.office_code, Priority.number)
                .join(Priority, Priority.application_id == Application.id)  # type: ignore[arg-type]
                .where(Priority.number.in_(numbers))):  # type: ignore[attr-defined]
            direct.setdefault(("priority", p_office, p_number), []).append(app)
    out: dict[Hashable, list[Match]] = {}
    for key, cands in wanted.items():
        best: dict[int, Match] = {}
        for cand in cands:
            for app in direct.get(cand, ()):
                seen = best.get(app.id or 0)
                if seen is None or _RANK[cand[0]] < _RANK[seen.matched_as]:
                    best[app.id or 0] = Match(app, cand[0])
        out[key] = _by_family(list(best.values()))
    return out


def _by_family(matches: list[Match]) -> list[Match]:
    """Best matches first; the rest of each family right after its first member."""
    matches.sort(key=lambda m: (_RANK[m.matched_as], m.app.filing_date, m.app.office_code))
    group: dict[object, int] = {}
    ordered: list[tuple[int, int, Match]] = []
    for i, m in enumerate(matches):
        family = m.app.family_id if m.app.family_id is not None else ("alone", i)
        ordered.append((group.setdefault(family, i), i, m))
    return [m for *_, m in sorted(ordered, key=lambda t: t[:2])]


def find_matches(session: Session, access: Access, text: str, *,
                 office: str | None = None) -> list[Match]:
    """Dossiers matching ``text`` that the viewer may see, with how each matched.

    Raises :class:`NumberError` (its message says what to type) when ``text``
    is not a number.
    """
    office = (office or "").strip().upper() or None
    try:
        reading = read_number(text, office=office, known_offices=known_offices(session))
        cands = candidates(reading)
    except NumberError:
        digits = "".join(ch for ch in text if ch.isalnum()).upper()
        if office is not None or not digits.isdigit() or len(digits) < 6:
            raise
        # a bare number without an office: whatever office has it as an application
        rows = session.exec(select(Application).where(Application.number == digits)
                            .order_by(Application.office_code)).all()
        return [Match(a, "application") for a in rows if access.can_see(a)]
    found = resolve(session, {0: cands})[0]
    return [m for m in found if access.can_see(m.app)]


def find_dossiers(
    session: Session, access: Access, text: str, *, office: str | None = None
) -> list[Application]:
    """Dossiers matching ``text`` that the viewer may see (see :func:`find_matches`)."""
    return [m.app for m in find_matches(session, access, text, office=office)]


def readings_of(texts: Iterable[str]) -> dict[str, NumberReading | None]:
    """Each text read as a number (``None`` where it is not one)."""
    out: dict[str, NumberReading | None] = {}
    for text in texts:
        try:
            out[text] = read_number(text) if text else None
        except NumberError:
            out[text] = None
    return out
