"""The thread page's cost does not grow with its posts or its dossier cards, and
batching the cards changes nothing any viewer sees."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from caseforum import hookimpl
from caseforum.app import create_app
from caseforum.authz import Viewer
from caseforum.config import Settings
from caseforum.dossiers import service as dossiers
from caseforum.dossiers.access import Access
from caseforum.dossiers.schemas import CitationIn, DossierIn, PriorityIn
from caseforum.forum import service as forum
from caseforum.models import Application, Document, DocumentOffice, Office, User
from tests.sql_helpers import counted

CARD_RE = re.compile(r'<aside class="dossier-card" aria-label="Dossier ([^"]+)">.*?</aside>',
                     re.S)
FAMILIES = 10  # JP applications, each with a US member claiming its priority: 20 dossiers


@pytest.fixture
def app(settings: Settings) -> Any:
    """No background consumers: every statement counted belongs to the request."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


def _jp(k: int) -> str:
    return f"2018-{900321 + k}"


def _us(k: int) -> str:
    return f"16/{900 + k:03d},{321 + k:03d}"


def _document(session: Session, app: Application, code: str, day: int, visibility: str,
              offices: tuple[str, ...] = ()) -> Document:
    doc = Document(application_id=app.id or 0, code=code,
                   date=app.filing_date + timedelta(days=day), media_type="application/pdf",
                   size=1, sha256=f"{app.id:032d}{day:032d}", filename=f"{code}.pdf",
                   visibility=visibility)
    session.add(doc)
    session.flush()
    for office in offices:
        session.add(DocumentOffice(document_id=doc.id or 0, office_code=office))
    return doc


def build_dossiers(session: Session) -> list[str]:
    """20 dossiers in 10 JP→US families, each with an office-wide document, a
    document restricted to KR and a citation taken from each; returns how posts
    mention them (JP and US alternating)."""
    mentions = []
    for k in range(FAMILIES):
        filed = date(2018, 3, 1) + timedelta(days=k)
        for office, number, priority in (("JP", _jp(k), None),
                                         ("US", _us(k), ("JP", _jp(k), filed))):
            app, _ = dossiers.upsert_dossier(session, actor_id=None, data=DossierIn(
                office=office, application_number=number,
                filing_date=filed + timedelta(days=300 if priority else 0),
                publication_number=(f"JP 2019-{900321 + k} A" if office == "JP"
                                    else f"US 2019/{900321 + k:07d} A1"),
                publication_date=filed + timedelta(days=550),
                title=f"Layered fin {office} {k}", applicants=["Bench Ltd.", "Other Co."],
                priorities=[PriorityIn(office=p[0], number=p[1], date=p[2])
                            for p in ([priority] if priority else [])]))
            srpt = _document(session, app, "SRPT", 200, "offices")
            exrp = _document(session, app, "EXRP", 300, "restricted", ("KR",))
            for doc, cited in ((srpt, "WO 2015/123450 A1"), (exrp, "WO 2016/555555 A1")):
                dossiers.add_citation(session, app=app, actor_id=None, data=CitationIn(
                    cited=cited, category="X", claims="1", phase="search",
                    document_id=doc.id))
            mentions.append(f"{office} {number}")
    session.commit()
    return mentions


def make_thread(session: Session, app: Any, category: Any, posts: int,
                mentions: list[str]) -> int:
    """A thread of ``posts`` posts, each mentioning two of ``mentions``."""
    patterns = app.state.plugins.reference_patterns()
    authors = [session.exec(select(User).where(User.username == name)).one()
               for name in ("jp.examiner", "cn.examiner", "kr.examiner")]
    thread = None
    for i in range(posts):
        body = (f"Compare {mentions[i % len(mentions)]} with "
                f"{mentions[(i + 1) % len(mentions)]}, claim {i}.")
        if thread is None:
            thread, _ = forum.create_thread(session, author=authors[0], category=category,
                                            title=f"{posts} posts", body=body,
                                            patterns=patterns)
        else:
            forum.add_post(session, author=authors[i % 3], thread=thread, body=body,
                           patterns=patterns)
    session.commit()
    assert thread is not None
    return thread.id or 0


@pytest.fixture
def cases(app: Any, db: Session) -> Iterator[dict[tuple[int, int], int]]:
    mentions = build_dossiers(db)
    category = forum.create_category(db, name="Batching", offices=[])
    db.commit()
    yield {(posts, distinct): make_thread(db, app, category, posts, mentions[:distinct])
           for posts in (20, 200) for distinct in (2, 20)}


@pytest.mark.usefixtures("steady_identity_cache")
def test_thread_page_statements_do_not_grow_with_posts_or_cards(app, as_user, cases) -> None:
    kr, _ = as_user("kr.examiner")
    sizes: dict[tuple[int, int], int] = {}
    for (posts, distinct), thread_id in cases.items():
        assert kr.get(f"/threads/{thread_id}").status_code == 200  # first visit marks it read
        with counted(app.state.engine) as statements:
            page = kr.get(f"/threads/{thread_id}")
        assert page.status_code == 200
        cards = CARD_RE.findall(page.text)
        assert page.text.count('<article id="post-') == posts
        assert len(cards) == 2 * posts and len(set(cards)) == distinct
        # the live hub's polling of the log may land inside the request (not the page's)
        sizes[(posts, distinct)] = len([s for s in statements
                                        if not s.startswith("SELECT event.id, event.at")])
    assert len(set(sizes.values())) == 1, sizes  # no statement per post or per card
    assert sizes[(200, 20)] <= 30, sizes  # was 78 with one round of queries per card


def test_thread_page_holds_one_database_connection_at_a_time(app, as_user, cases) -> None:
    """Two at once per request let 16 concurrent readers take the whole pool (5 + 10
    connections for SQLite) while each waited for its second: 30 s, then a 500."""
    kr, _ = as_user("kr.examiner")
    held = [0]
    most = [0]

    def checkout(*_: Any) -> None:
        held[0] += 1
        most[0] = max(most[0], held[0])

    def checkin(*_: Any) -> None:
        held[0] -= 1

    kr.get(f"/threads/{cases[(20, 20)]}")
    event.listen(app.state.engine, "checkout", checkout)
    event.listen(app.state.engine, "checkin", checkin)
    try:
        assert kr.get(f"/threads/{cases[(20, 20)]}").status_code == 200
    finally:
        event.remove(app.state.engine, "checkout", checkout)
        event.remove(app.state.engine, "checkin", checkin)
    assert most[0] == 1


def _old_card(env: Any, access: Access, app: Application) -> str:
    """The card as it was drawn before batching: four queries per card."""
    family = access.family(app)
    documents = access.documents([app])
    latest = sorted(documents, key=lambda d: (d.date, d.id), reverse=True)[:3]
    citations = access.citations([app], documents)
    return env.get_template("partials/dossier_card.html").render(
        app=app, family_size=len(family), latest=latest, citation_count=len(citations))


@pytest.mark.parametrize("username, seen", [
    ("kr.examiner", 20),  # accessing, named on the restricted documents
    ("cn.examiner", 20),  # accessing, not named: no EXRP, one citation fewer
    ("us.admin", 10),  # providing only: its own US dossiers, families of one
])
def test_batched_cards_are_what_each_viewer_saw_before(app, as_user, db, cases, username,
                                                       seen) -> None:
    client, _ = as_user(username)
    page = client.get(f"/threads/{cases[(20, 20)]}").text
    cards = {m.group(1): m.group(0) for m in CARD_RE.finditer(page)}
    assert len(cards) == seen
    user = db.exec(select(User).where(User.username == username)).one()
    access = Access(db, Viewer.of(user, db.get(Office, user.office_code)))
    ours = db.exec(select(Application).where(
        Application.title.startswith("Layered fin"))).all()  # type: ignore[attr-defined]
    assert len(ours) == 20
    for app_row in ours:
        label = f"{app_row.office_code} {app_row.display_number}"
        if not access.can_see(app_row):
            assert label not in cards
            continue
        assert cards[label] == _old_card(app.state.templates, access, app_row)
    # the restricted report: for the named office and the office that provided it
    assert ("<code>EXRP</code>" in page) is (username != "cn.examiner")


def test_a_dossier_mentioned_by_two_numbers_gets_one_card_per_post(app, as_user, db) -> None:
    build_dossiers(db)
    category = forum.create_category(db, name="Two ways", offices=[])
    db.commit()
    thread = make_thread(db, app, category, 1, [f"JP {_jp(0)}", "JP 2019-900321 A"])
    kr, _ = as_user("kr.examiner")
    page = kr.get(f"/threads/{thread}").text
    assert page.count('<a class="ref" href="/dossiers/JP/') == 2
    assert len(CARD_RE.findall(page)) == 1


class RecordingCards:
    """A third-party card plugin: loads once per page, then draws from what it loaded."""

    def __init__(self) -> None:
        self.prepared: list[list[str]] = []

    @hookimpl
    def prepare_references(self, references, viewer):
        self.prepared.append([r.app.display_number for r in references])
        for r in references:
            r.page.setdefault("recording", {})[r.app.id] = r.app.title.upper()

    @hookimpl
    def render_reference(self, reference, viewer):
        title = reference.page["recording"][reference.app.id]
        return f'<aside class="dossier-card" aria-label="Dossier X {title}">{title}</aside>'


def test_hook_prepare_references_is_called_once_per_page_with_every_card(
        app, as_user, db, cases) -> None:
    plugin = RecordingCards()
    app.state.plugins.add(plugin, name="recording_cards")
    try:
        kr, _ = as_user("kr.examiner")
        page = kr.get(f"/threads/{cases[(200, 20)]}").text
    finally:
        app.state.plugins.remove("recording_cards")
    assert len(plugin.prepared) == 1 and len(plugin.prepared[0]) == 20
    assert "LAYERED FIN JP 0" in page  # the plugin registered last answers first
    assert page.count('aria-label="Dossier X LAYERED FIN') == 400


def test_hook_prepare_references_failing_plugin_leaves_the_page_up(app, as_user, cases) -> None:
    class Broken:
        @hookimpl
        def prepare_references(self, references, viewer):
            raise RuntimeError("card service down")

    app.state.plugins.add(Broken(), name="broken_cards")
    try:
        kr, _ = as_user("kr.examiner")
        page = kr.get(f"/threads/{cases[(20, 2)]}")
        error = app.state.plugins.records["broken_cards"].hook_errors.get("prepare_references")
    finally:
        app.state.plugins.remove("broken_cards")
    assert page.status_code == 200
    assert len(CARD_RE.findall(page.text)) == 40  # the built-in cards are still drawn
    assert error and "card service down" in error  # and the admin page says why
