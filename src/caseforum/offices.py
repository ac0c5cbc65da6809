"""Participating offices: the reference list loaded by ``caseforum init``."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from caseforum import errors
from caseforum.events import emit
from caseforum.models import Office, utcnow
from caseforum.models.office import IceRole

# (code, name, providing, accessing) as the offices took part in WIPO CASE
REFERENCE_OFFICES: tuple[tuple[str, str, bool, bool], ...] = (
    ("AU", "IP Australia", True, True),
    ("CA", "Canadian Intellectual Property Office", True, True),
    ("CN", "China National Intellectual Property Administration", True, True),
    ("IL", "Israel Patent Office", True, True),
    ("JP", "Japan Patent Office", True, True),
    ("KR", "Korean Intellectual Property Office", True, True),
    ("GB", "UK Intellectual Property Office", True, True),
    ("US", "United States Patent and Trademark Office", True, False),
    ("IB", "International Bureau of WIPO", True, False),
    ("CL", "National Institute of Industrial Property (Chile)", False, True),
    ("IN", "Office of the Controller General of Patents, Designs and Trade Marks (India)",
     False, True),
    ("ID", "Directorate General of Intellectual Property (Indonesia)", False, True),
    ("LA", "Department of Intellectual Property (Lao PDR)", False, True),
    ("MY", "Intellectual Property Corporation of Malaysia", False, True),
    ("MN", "Intellectual Property Office of Mongolia", False, True),
    ("NZ", "Intellectual Property Office of New Zealand", False, True),
    ("PH", "Intellectual Property Office of the Philippines", False, True),
    ("SG", "Intellectual Property Office of Singapore", False, True),
    ("TH", "Department of Intellectual Property (Thailand)", False, True),
    ("VN", "Intellectual Property Office of Viet Nam", False, True),
)

#: the zone of each office's seat: its examiners' times unless they choose another
#: (migration 0009 gave existing offices the same)
OFFICE_ZONES: dict[str, str] = {
    "AU": "Australia/Sydney",
    "CA": "America/Toronto",
    "CN": "Asia/Shanghai",
    "IL": "Asia/Jerusalem",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "GB": "Europe/London",
    "US": "America/New_York",
    "IB": "Europe/Zurich",
    "EP": "Europe/Berlin",
    "CL": "America/Santiago",
    "IN": "Asia/Kolkata",
    "ID": "Asia/Jakarta",
    "LA": "Asia/Vientiane",
    "MY": "Asia/Kuala_Lumpur",
    "MN": "Asia/Ulaanbaatar",
    "NZ": "Pacific/Auckland",
    "PH": "Asia/Manila",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh",
}

ROLE_NAMES = ("providing", "accessing")
CODE_RE = re.compile(r"^[A-Z]{2}$")


class OfficeError(errors.InvalidInput):
    """Bad office input; the message says what to fix."""


def seed_reference_offices(session: Session) -> int:
    """Add the reference offices that are missing; never overwrite an admin's edits."""
    # one query for all of them, not one lookup per office (run at every start)
    codes = [code for code, *_ in REFERENCE_OFFICES]
    present = set(session.exec(select(Office.code).where(col(Office.code).in_(codes))))
    added = 0
    for code, name, providing, accessing in REFERENCE_OFFICES:
        if code not in present:
            session.add(Office(code=code, name=name, providing=providing, accessing=accessing,
                               time_zone=OFFICE_ZONES.get(code, "")))
            added += 1
    return added


def list_offices(session: Session) -> list[Office]:
    return list(session.exec(select(Office).order_by(Office.code)))


def parse_roles(roles: list[str]) -> tuple[bool, bool]:
    cleaned = {r.strip().lower() for r in roles if r.strip()} - {"none"}
    unknown = cleaned - set(ROLE_NAMES)
    if unknown:
        raise OfficeError(
            f"unknown office role {sorted(unknown)[0]!r}: use providing and/or accessing"
        )
    return "providing" in cleaned, "accessing" in cleaned


def add_office(session: Session, *, code: str, name: str, roles: list[str]) -> Office:
    code = code.strip().upper()
    if not CODE_RE.match(code):
        raise OfficeError(f"office code {code!r} must be two letters (WIPO ST.3), e.g. NZ")
    if not name.strip():
        raise OfficeError("give the office a name")
    if session.get(Office, code) is not None:
        raise OfficeError(f"office {code} exists already: use 'offices set-roles'")
    providing, accessing = parse_roles(roles)
    office = Office(code=code, name=name.strip(), providing=providing, accessing=accessing,
                    time_zone=OFFICE_ZONES.get(code, ""))
    session.add(office)
    return office


PUBLIC_ACCESS_EVENT = "office.public_access"


def set_public_access(session: Session, office: Office, *, on: bool, by: str,
                      actor_id: int | None = None) -> bool:
    """Switch anonymous access to ``office``'s content on or off; returns whether
    anything changed.

    ``by`` names who decided (a username, "command line", "demo set-up"); it is kept
    on the office with the time, and the switch is written to the event log in the
    caller's transaction, which puts it in the account history.  Every process drops
    its cached office table when the commit lands (:mod:`caseforum.authcache`), so
    the change holds for the next request of this process at once."""
    if office.public_access == on:
        return False
    office.public_access = on
    office.public_access_changed_at = utcnow()
    office.public_access_changed_by = by
    session.add(office)
    state = "on" if on else "off"
    emit(session, kind=PUBLIC_ACCESS_EVENT, actor_id=actor_id, office_code=office.code,
         subject_type="office", subject_id=office.code,
         payload={"office_code": office.code, "public_access": on,
                  "detail": f"{office.code} public access {state} (by {by})"})
    return True


def set_time_zone(session: Session, office: Office, zone: str, *,
                  actor_id: int | None = None) -> None:
    """Give ``office`` the IANA time zone its users' pages show times in (empty: the
    instance default); the caller has checked the name.  Told to the event log as the
    other changes of an office are."""
    office.time_zone = zone
    session.add(office)
    emit(session, kind="office.changed", actor_id=actor_id, office_code=office.code,
         subject_type="office", subject_id=office.code,
         payload={"office_code": office.code, "detail": f"time zone {zone or 'default'}"})


def set_roles(
    session: Session,
    *,
    code: str,
    roles: list[str] | None,
    public_access: bool | None = None,
    ice_role: str | None = None,
) -> Office:
    office = session.get(Office, code.strip().upper())
    if office is None:
        raise OfficeError(f"unknown office {code!r}: see 'caseforum offices list'")
    if roles is not None:  # None: keep the roles, change only what else was given
        office.providing, office.accessing = parse_roles(roles)
    if public_access is not None:
        set_public_access(session, office, on=public_access, by="command line")
    if ice_role is not None:
        try:
            office.ice_role = IceRole(ice_role)
        except ValueError:
            raise OfficeError(
                f"unknown ICE role {ice_role!r}: use none, donor, recipient or both"
            ) from None
    session.add(office)
    # in the same transaction: live sockets of the office's users are re-checked
    emit(session, kind="office.changed", office_code=office.code, subject_type="office",
         subject_id=office.code, payload={"office_code": office.code,
                                          "detail": ",".join(office.roles) or "no role"})
    return office
