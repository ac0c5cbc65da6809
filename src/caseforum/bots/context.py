"""What a bot may look at while it handles a post: read-only, with the asker's rights.

A bot looks dossiers up with the rights of the examiner who asked (for an
event, with an anonymous visitor's rights), never with more: a bot must not
become a way to learn about dossiers one may not see.  The session behind
the context refuses to write, and is rolled back when the bot returns.

A bot answers in the asker's language (:attr:`BotContext.language`): its text is
stored once and read by everyone in the thread, so it is written in the language
of the one who asked; the cards in it are drawn in each reader's own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from caseforum import i18n
from caseforum.authz import Viewer
from caseforum.bots.base import BotEvent, BotPost, BotReference, BotThread, Invocation
from caseforum.dossiers.access import Access
from caseforum.models import Application, Office, Post, Reference, Thread
from caseforum.numbers import (
    AppNumber,
    NumberError,
    PubNumber,
    find_references,
    parse_application_number,
    parse_publication_number,
)


class ReadOnlyError(RuntimeError):
    """A bot tried to write to the database."""


def read_only_session(engine: Engine) -> Session:
    """A session that raises on any flush: bots answer, the runner writes."""
    session = Session(engine, expire_on_commit=False)

    def refuse(*_: Any) -> None:
        raise ReadOnlyError("a bot may not write to the database: return a BotAnswer instead")

    sa_event.listen(session, "before_flush", refuse)
    return session


def reference_rows(session: Session, post_id: int) -> list[BotReference]:
    rows = session.exec(select(Reference).where(Reference.post_id == post_id)
                        .order_by(Reference.position))
    return [BotReference(kind=r.kind, office=r.office_code, number=r.number, text=r.text)
            for r in rows]


def thread_info(thread: Thread) -> BotThread:
    return BotThread(id=thread.id or 0, title=thread.title, category_id=thread.category_id,
                     is_private=thread.is_private)


class BotContext:
    """Read-only helpers for one bot call.

    Attributes: ``post`` (or ``None`` for an event), ``event`` (or ``None``),
    ``thread`` (the post's thread), ``threads`` (for an event: the threads
    that reference the dossier, where the answer will be posted),
    ``invocations`` and ``references`` (the post's numbers), ``language`` (the
    asker's: answer in it, with :meth:`tr`).
    """

    def __init__(
        self,
        session: Session,
        *,
        viewer: Viewer,
        post: BotPost | None = None,
        thread: BotThread | None = None,
        threads: list[BotThread] | None = None,
        event: BotEvent | None = None,
        invocations: list[Invocation] | None = None,
        references: list[BotReference] | None = None,
        patterns: list[Any] | None = None,
        language: str = i18n.DEFAULT_LANGUAGE,
    ) -> None:
        self._session = session
        #: the language to answer in (a code of ``caseforum.i18n.LANGUAGES``): the
        #: asker's own choice, else their page's, else the instance default (for an
        #: event: the default)
        self.language = language
        self._locale = i18n.PageLocale.of(language)
        self._access = Access(session, viewer)
        self._patterns = patterns
        self.viewer = viewer
        self.post = post
        self.thread = thread
        self.threads = threads or ([thread] if thread else [])
        self.event = event
        self.invocations = invocations or []
        self.references = references or []

    # The request ------------------------------------------------------------

    @property
    def args(self) -> str:
        """What followed the first command or mention ("" if nothing did)."""
        return self.invocations[0].args if self.invocations else ""

    def thread_references(self) -> list[BotReference]:
        """Every number mentioned in the visible posts of the thread, first mention first."""
        if self.thread is None:
            return []
        post_ids = list(self._session.exec(select(Post.id).where(
            Post.thread_id == self.thread.id, Post.hidden.is_(False))  # type: ignore[attr-defined]
            .order_by(Post.id)))
        seen: dict[tuple[str, str, str], BotReference] = {}
        for post_id in post_ids:
            for ref in reference_rows(self._session, post_id or 0):
                seen.setdefault((ref.kind, ref.office, ref.number), ref)
        return list(seen.values())

    def tr(self, message: str) -> str:
        """``message`` in the asker's language: a message marked with ``N_`` or
        ``Msg`` (``caseforum.i18n``) is looked up in the catalogue, anything else is
        kept as it is."""
        return i18n.translate(message, self._locale)

    # Numbers ----------------------------------------------------------------

    def _known_offices(self) -> set[str]:
        return set(self._session.exec(select(Office.code))) | {"EP", "WO", "DE", "FR"}

    def numbers_in(self, text: str) -> list[AppNumber | PubNumber]:
        """Every application or publication number written in ``text``."""
        found = find_references(text, self._patterns) if self._patterns \
            else find_references(text)
        return [ref.number for ref in found]

    def parse_number(self, text: str) -> AppNumber | PubNumber:
        """The number in ``text``, loosely written or not; raises ``NumberError``
        whose message tells the asker what to type."""
        found = self.numbers_in(text)
        if found:
            return found[0]
        known = self._known_offices()
        try:
            return parse_application_number(text, known_offices=known)
        except NumberError as first:
            try:
                return parse_publication_number(text, known_offices=known)
            except NumberError:
                raise first from None

    # Dossiers, as the asker may see them ------------------------------------

    def find_dossier(self, text: str) -> Application | None:
        """The dossier a number in ``text`` names, if the asker may see it; ``None``
        when it does not exist *or* is not visible (the two are not told apart).
        Raises ``NumberError`` when ``text`` holds no readable number."""
        number = self.parse_number(text)
        return self.dossier(number)

    def dossier(self, number: AppNumber | PubNumber) -> Application | None:
        """Like :meth:`find_dossier` for an already parsed number."""
        if isinstance(number, AppNumber):
            query = select(Application).where(Application.office_code == number.office,
                                              Application.number == number.number)
        else:
            query = select(Application).where(
                Application.publication_number == number.office + number.number)
        app = self._session.exec(query).first()
        return app if self._access.can_see(app) else None

    def dossier_key(self, text: str) -> tuple[str, str] | None:
        """``(office, number)`` to put in a dossier or citations embed.

        An application number needs no look-up at all (the forum decides for
        each reader whether the card shows); a publication number is resolved
        to its application with the asker's rights.  Raises ``NumberError``.
        """
        number = self.parse_number(text)
        if isinstance(number, AppNumber):
            return number.office, number.number
        app = self.dossier(number)
        return (app.office_code, app.number) if app else None

    def family(self, app: Application) -> list[Application]:
        """The members of ``app``'s family the asker may see."""
        return self._access.family(app)
