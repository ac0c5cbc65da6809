"""Demo forum content: categories and threads that mention the demo dossiers."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from caseforum.db import open_session
from caseforum.forum import service
from caseforum.models import Application, Category, User
from caseforum.numbers import parse_application_number


def _mention(app: Application) -> str:
    """The number as an examiner would type it, e.g. ``US 16/123,456``."""
    if app.office_code == "IB":
        return app.display_number  # PCT/JP2020/009517
    try:
        parsed = parse_application_number(app.number, office=app.office_code)
        return str(parsed)
    except ValueError:
        return f"{app.office_code}{app.number}"


def load_demo_forum(engine: Engine, patterns: list | None = None) -> int:
    """Add the demo categories and threads once; returns how many threads were added."""
    with open_session(engine) as session:
        if session.exec(select(Category)).first() is not None:
            return 0
        users = {u.username: u for u in session.exec(select(User))}
        needed = ("jp.examiner", "cn.examiner", "kr.examiner", "au.examiner", "admin")
        if any(name not in users for name in needed):
            return 0
        general = service.create_category(
            session, name="General", description="Open to every participating office.")
        asia = service.create_category(
            session, name="East Asia search practice", offices=["CN", "JP", "KR"],
            description="Search strategies and classification questions among CN, JP and KR.")
        service.create_category(
            session, name="Work sharing and PPH", description="Using each other's results.")
        apps = list(session.exec(select(Application).order_by(Application.id).limit(12)))
        by_office = {a.office_code: a for a in reversed(apps)}
        first_app = by_office.get("JP") or (apps[0] if apps else None)
        second_app = by_office.get("US") or by_office.get("IB") or first_app
        first = _mention(first_app) if first_app else "US 16/123,456"
        second = _mention(second_app) if second_app else first
        thread, opening = service.create_thread(
            session, author=users["jp.examiner"], category=general,
            title=f"Family of {first}: who has examined it?",
            body=(f"We are starting examination of {first}. Has any office already "
                  "issued a search report for this family? @kr.examiner, I believe KIPO "
                  "looked at a member last year."),
            patterns=patterns)
        service.add_post(
            session, author=users["kr.examiner"], thread=thread, reply_to_id=opening.id,
            body=("Yes: our search report cites two **X** documents against claims 1-3. "
                  f"The same art appears in {second}."),
            patterns=patterns)
        service.add_post(
            session, author=users["au.examiner"], thread=thread,
            body="Thanks, that saves us a search. We will look at claim 4 in particular.",
            patterns=patterns)
        service.toggle_reaction(session, user=users["jp.examiner"],
                                post=opening, reaction="+1")
        service.create_thread(
            session, author=users["cn.examiner"], category=asia,
            title="CPC F28F 1/32 versus FI terms for fin stacks",
            body=("When searching fin stacks we combine CPC F28F 1/32 with FI terms. "
                  "Does JPO use the F-terms 3L103 here? Any pitfalls?"),
            patterns=patterns)
        service.create_thread(
            session, author=users["cn.examiner"], category=None,
            title="Question about your written opinion",
            body="Could we discuss your reasoning on inventive step offline?",
            participants=[users["jp.examiner"]], patterns=patterns)
        session.commit()
        return 3
