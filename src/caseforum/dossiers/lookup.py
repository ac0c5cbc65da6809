"""The number box: any loose form of an application or publication number."""

from __future__ import annotations

from sqlmodel import Session, or_, select

from caseforum.dossiers.access import Access
from caseforum.models import Application, Office
from caseforum.numbers import NumberError, parse_application_number, parse_publication_number


def _known(session: Session) -> set[str]:
    return set(session.exec(select(Office.code))) | {"EP", "WO", "DE", "FR"}


def find_dossiers(
    session: Session, access: Access, text: str, *, office: str | None = None
) -> list[Application]:
    """Dossiers matching ``text`` that the viewer may see.

    Raises :class:`NumberError` (its message says what to type) when ``text``
    is neither an application nor a publication number.
    """
    known = _known(session)
    office = (office or "").strip().upper() or None
    clauses = []
    problems: list[str] = []
    try:
        app = parse_application_number(text, office=office, known_offices=known)
        clauses.append((Application.office_code == app.office) & (Application.number == app.number))
        if app.kind == "pct":
            clauses.append(Application.pct_number == app.number)
    except NumberError as exc:
        problems.append(str(exc))
    try:
        pub = parse_publication_number(text, office=office, known_offices=known)
        clauses.append(Application.publication_number == pub.office + pub.number)
    except NumberError as exc:
        problems.append(str(exc))
    if not clauses:
        digits = "".join(ch for ch in text if ch.isalnum()).upper()
        if office is None and digits.isdigit() and len(digits) >= 6:
            clauses.append(Application.number == digits)  # a bare number: any office
        else:
            raise NumberError(problems[0])
    rows = session.exec(select(Application).where(or_(*clauses))
                        .order_by(Application.office_code)).all()
    return [a for a in rows if access.can_see(a)]
