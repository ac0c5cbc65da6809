"""Dossiers from remote sources: asked on demand, stored here, served from here.

A number not held here is looked up in the sources in plugin order
(:func:`find_remote`); the first that knows it answers, and what it returns is
stored as ordinary applications, family links and documents (:func:`store_dossier`)
with the remote facts beside them (``models/remote.py``).  Later views read the
stored copy; once it is older than the source's time-to-live it is fetched again,
and when that fails the copy is still served, marked ``stale_since``.  A document's
bytes are fetched on first view and kept in the file store by SHA-256
(:func:`document_chunks`), so the second view costs no remote call.

The sources are called only through their guard (``caseforum.sources``); whatever
goes wrong there arrives here as :class:`SourceUnavailable`, never as a crash.
Visibility is applied by the callers, with :class:`~caseforum.dossiers.access.Access`,
as for every other dossier.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from caseforum import errors
from caseforum.doccodes import one_line_label
from caseforum.dossiers import service
from caseforum.dossiers.access import Access
from caseforum.dossiers.lookup import Match as LocalMatch
from caseforum.dossiers.lookup import find_dossiers, find_matches
from caseforum.events import emit
from caseforum.models import (
    Application,
    Document,
    DocumentOffice,
    Family,
    Office,
    Priority,
    RemoteDocument,
    RemoteDossier,
    Visibility,
    utcnow,
)
from caseforum.numbers import (
    NumberError,
    parse_application_number,
    parse_publication_number,
)
from caseforum.sources import (
    GuardedSource,
    NumberMatch,
    SourceApplication,
    SourceDossier,
    SourceUnavailable,
)
from caseforum.storage import StoredFile, safe_filename
from caseforum.storage_backends import StorageBackend

if TYPE_CHECKING:
    from caseforum.plugin_host import PluginHost

log = logging.getLogger(__name__)
MAX_REMOTE_MATCHES = 5  # the number box fetches at most this many dossiers for one number


@dataclass(frozen=True)
class Match:
    """One answer of the look-up: a dossier here, or one a source knows."""

    office: str
    application_number: str
    display_number: str
    matched_as: str
    source: str
    family_id: int | None = None

    @property
    def url(self) -> str:
        return f"/api/v1/dossiers/{self.office}/{self.application_number}"


def remote_sources(host: PluginHost) -> list[GuardedSource]:
    """The sources to ask for numbers not held here: every usable source except
    the ones whose dossiers already live in this database (``local = True``)."""
    return [g for g in host.guarded_sources()
            if not g.health.problem and not getattr(g.source, "local", False)]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def lookup(session: Session, access: Access, host: PluginHost, text: str,
           office: str | None = None, *,
           ask_sources: bool = True) -> tuple[list[Match], list[str]]:
    """Every dossier matching ``text``: the visible ones held here, then what the
    remote sources know that is not held here (fetched and stored now, so that each
    match opens without another look-up).  Also returns one line per source that
    could not be asked; the caller commits.  Raises :class:`NumberError` for a malformed number
    when no source recognises it either."""
    problem: NumberError | None = None
    local: list[LocalMatch] = []
    try:  # the number box's own parser and resolver: a family's members together
        local = find_matches(session, access, text, office=office)
    except NumberError as exc:
        problem = exc
    matches = [Match(m.app.office_code, m.app.number, m.app.display_number, m.matched_as,
                     m.app.source, m.app.family_id) for m in local]
    held = {(m.office, m.application_number) for m in matches}
    unavailable: list[str] = []
    for guard in remote_sources(host) if ask_sources else []:
        try:
            found = guard.lookup(text, office=office)
        except SourceUnavailable as exc:
            unavailable.append(exc.message)
            continue
        except errors.CaseForumError:
            continue  # the source says: not a number it knows
        for m in found[:MAX_REMOTE_MATCHES]:
            key = (m.office.upper(), _normal_number(session, m.office, m.application_number))
            if key in held:
                continue
            held.add(key)
            try:  # stored now, so the url answers without asking again
                app = fetch_and_store(session, guard, m)
            except SourceUnavailable as exc:
                unavailable.append(exc.message)
                continue
            if app is not None and access.can_see(app):
                matches.append(Match(app.office_code, app.number, app.display_number,
                                     m.matched_as, guard.name, app.family_id))
    if not matches and problem is not None and not unavailable:
        raise problem
    return matches, unavailable


def find_or_fetch(session: Session, access: Access, host: PluginHost, text: str,
                  office: str | None = None) -> tuple[list[Application], list[str]]:
    """The number box: visible dossiers held here (only the one the number names, when
    it names exactly one); when there are none, the dossiers the sources know, fetched
    and stored now.  Returns them and the sources that could not be asked."""
    try:
        matches = find_matches(session, access, text, office=office)
    except NumberError:
        local: list[Application] = []
        malformed = True
    else:
        malformed = False
        # the dossier the number names, when it is one: the box opens it (its page shows
        # the family); otherwise every match, family members found through it included
        named = [m.app for m in matches if m.matched_as in ("application", "publication")]
        local = named if len(named) == 1 else [m.app for m in matches]
    if local or not access.viewer.is_authenticated:  # visitors never set off remote calls
        if malformed and not local:
            find_dossiers(session, access, text, office=office)  # raises the NumberError
        return local, []
    found: list[Application] = []
    unavailable: list[str] = []
    for guard in remote_sources(host):
        try:
            matches = guard.lookup(text, office=office)[:MAX_REMOTE_MATCHES]
        except SourceUnavailable as exc:
            unavailable.append(exc.message)
            continue
        except errors.CaseForumError:
            continue
        for match in matches:
            try:
                app = fetch_and_store(session, guard, match)
            except SourceUnavailable as exc:
                unavailable.append(exc.message)
                continue
            if app is not None and access.can_see(app):
                found.append(app)
        if found:
            break
    if not found and malformed and not unavailable:
        find_dossiers(session, access, text, office=office)  # raises the NumberError
    return found, unavailable


def fetch_and_store(session: Session, guard: GuardedSource,
                    match: NumberMatch) -> Application | None:
    """Fetch the dossier a source matched and store it (and its family)."""
    dossier = guard.fetch_dossier(match.ref)
    if dossier is None:
        return None
    return store_dossier(session, guard.name, dossier)


def ensure_dossier(session: Session, host: PluginHost, office: str, number: str, *,
                   refresh: bool = False, ask_sources: bool = True) -> Application | None:
    """The dossier ``office``/``number`` as held here, fetched from the sources when
    it is not held, refreshed when its copy is older than the source's time-to-live
    (or ``refresh``).  A copy that cannot be refreshed is returned marked
    ``stale_since``.  ``None``: no source knows it (or, without ``ask_sources``,
    it is not held here).  Raises
    :class:`SourceUnavailable` when it is not held and a source could not be asked."""
    app = service.get_dossier(session, office=office, number=number)
    if app is not None:
        guard = host.source(app.source)
        if guard is None or getattr(guard.source, "local", False):
            return app
        remote = session.get(RemoteDossier, app.id)
        fresh = remote is not None and (
            utcnow() - _utc(remote.fetched_at) < timedelta(seconds=guard.ttl_seconds))
        if fresh and not refresh:
            return app
        try:
            dossier = guard.fetch_dossier(app.source_ref)
        except SourceUnavailable:
            dossier = None
        if dossier is None:
            if remote is not None and remote.stale_since is None:
                remote.stale_since = utcnow()
                session.add(remote)
                session.flush()
            return app
        return store_dossier(session, guard.name, dossier, app=app)
    if not ask_sources:
        return None
    unavailable: list[str] = []
    for guard in remote_sources(host):
        try:
            matches = guard.lookup(f"{office} {number}", office=office)
        except SourceUnavailable as exc:
            unavailable.append(exc.message)
            continue
        except errors.CaseForumError:
            continue
        wanted = _normal_number(session, office, number)
        for match in matches:
            if (match.office.upper(), _normal_number(session, match.office,
                                                     match.application_number)) \
                    != (office.upper(), wanted):
                continue
            try:
                return fetch_and_store(session, guard, match)
            except SourceUnavailable as exc:
                unavailable.append(exc.message)
    if unavailable:
        raise SourceUnavailable(
            f"{office.upper()} {number} is not held here and could not be fetched: "
            + "; ".join(unavailable))
    return None


# Storing what a source returned ---------------------------------------------------


def _normal_number(session: Session, office: str, number: str) -> str:
    try:
        return parse_application_number(
            number, office=office.upper(),
            known_offices=service._known_offices(session) | {office.upper()}).number
    except NumberError:
        return re.sub(r"[^0-9A-Za-z]", "", number).upper()


def _office(session: Session, code: str) -> str:
    """The office row for ``code``, added (neither providing nor accessing) when a
    source brings a member of an office that does not take part here."""
    code = code.upper()
    if session.get(Office, code) is None:
        session.add(Office(code=code, name=code, providing=False, accessing=False,
                           public_access=True))
        session.flush()
    return code


def _publication(member: SourceApplication) -> tuple[str, str, Any]:
    """The publication the dossier is cited by: the first pre-grant publication
    (kind A...), else the first one.  Normalised number, display, date."""
    pubs = sorted(member.publications,
                  key=lambda p: (not p.kind.upper().startswith("A"), p.date or date.min))
    if not pubs:
        return "", "", None
    pub = pubs[0]
    try:
        parsed = parse_publication_number(f"{member.office} {pub.number} {pub.kind}".strip(),
                                          office=member.office,
                                          known_offices={member.office, "WO"})
        return parsed.office + parsed.number, parsed.display, pub.date
    except NumberError:
        return member.office + pub.number, f"{member.office} {pub.number} {pub.kind}".strip(), \
            pub.date


def _upsert_member(session: Session, source: str, ref: str, member: SourceApplication,
                   known: set[str]) -> Application | None:
    office = _office(session, member.office)
    try:
        parsed = parse_application_number(member.number, office=office,
                                          known_offices=known | {office, "IB"})
        number, display, kind = parsed.number, parsed.display, parsed.kind
        office = _office(session, parsed.office)
    except NumberError:
        number = re.sub(r"[^0-9A-Za-z]", "", member.number).upper()
        display, kind = member.display_number or member.number, "national"
    if not number:
        return None
    pub_number, pub_display, pub_date = _publication(member)
    filing = member.filing_date or pub_date
    if filing is None:
        return None  # nothing to place it in time: left out rather than dated wrongly
    app = session.exec(select(Application).where(
        Application.office_code == office, Application.number == number)).first()
    if app is not None and app.source != source:
        return app  # held here from another source (say, uploaded): never overwritten
    created = app is None
    if app is None:
        app = Application(office_code=office, number=number, display_number=display,
                          filing_date=filing, publication_number=pub_number,
                          publication_date=pub_date or filing, title=member.title)
    app.display_number = display
    app.kind = kind
    app.filing_date = filing
    app.publication_number = pub_number
    app.publication_display = pub_display
    app.publication_date = pub_date or filing
    app.title = member.title or app.title
    app.applicants = [a.strip() for a in member.applicants if a.strip()] or app.applicants
    app.source = source
    app.source_ref = ref
    app.updated_at = utcnow()
    pct = next((p for p in member.priorities if p.kind.upper() == "W"), None)
    if pct is not None and kind != "pct":
        with contextlib.suppress(NumberError):  # a claim the parser cannot read: no link
            app.pct_number = parse_application_number(pct.number, known_offices=known).number
    session.add(app)
    session.flush()
    remote = session.get(RemoteDossier, app.id) or RemoteDossier(application_id=app.id or 0,
                                                                  source=source)
    remote.kind_code = member.kind_code[:8]
    remote.publications = [{"number": p.number, "kind": p.kind,
                            "date": p.date.isoformat() if p.date else None}
                           for p in member.publications]
    remote.documents_listed = remote.documents_listed or member.documents is not None
    remote.fetched_at = utcnow()
    remote.stale_since = None
    session.add(remote)
    emit(session, kind="dossier.created" if created else "dossier.updated", actor_id=None,
         office_code=app.office_code, subject_type="application", subject_id=app.id or "",
         payload={"application_id": app.id, "office": app.office_code, "number": app.number,
                  "family_id": app.family_id, "source": source})
    return app


def _priorities(session: Session, app: Application, member: SourceApplication,
                dates: dict[tuple[str, str], Any], known: set[str]) -> None:
    """The claims whose date is known (the claimed application is in the family);
    the rest are left out: a priority is nothing without its date."""
    for old in session.exec(select(Priority).where(Priority.application_id == app.id)):
        session.delete(old)
    for claim in member.priorities:
        number = _normal_number(session, claim.office, claim.number)
        when = dates.get((claim.office.upper(), number))
        if when is None or (claim.office.upper(), number) == (app.office_code, app.number) \
                or when > app.filing_date:
            continue
        session.add(Priority(application_id=app.id or 0, office_code=claim.office.upper(),
                             number=number, display_number=claim.number, date=when))


def _join_family(session: Session, apps: list[Application]) -> None:
    """One family for every member the source listed, merged with the families the
    members already belonged to (a hosted member, say)."""
    for app in apps:
        service.link_family(session, app)
    ids = sorted({a.family_id for a in apps if a.family_id})
    target = ids[0] if ids else None
    if target is None:
        family = Family()
        session.add(family)
        session.flush()
        target = family.id
    service.merge_families(session, target or 0, ids[1:])
    for app in apps:
        app.family_id = target
        session.add(app)
    session.flush()


def _filename(doc_code: str, ref: str, media_type: str) -> str:
    tail = ref.rstrip("/").split("/")
    stem = "-".join(part for part in (doc_code, tail[2] if len(tail) > 2 else tail[-1]) if part)
    return safe_filename(stem, media_type)


def _documents(session: Session, source: str, app: Application,
               member: SourceApplication) -> None:
    """Add the documents not held yet (their bytes come on first view); update the
    listing facts of the others."""
    if member.documents is None:
        return
    held = {r.ref: r for r in session.exec(
        select(RemoteDocument).join(Document, Document.id == RemoteDocument.document_id)
        .where(Document.application_id == app.id))}
    for item in member.documents:
        remote = held.get(item.ref)
        if remote is not None:
            remote.label, remote.shareable = item.label, item.shareable
            remote.original_ref = item.original_ref
            session.add(remote)
            continue
        visibility = Visibility(item.visibility) if item.visibility in Visibility.__members__ \
            else Visibility.public
        doc = Document(application_id=app.id or 0, code=item.code, date=item.date,
                       # the pages show the office's own label
                       label=one_line_label(item.label)[:300], language=item.language,
                       is_translation=item.is_translation,
                       media_type=item.media_type, size=0, sha256="",
                       filename=_filename(item.code, item.ref, item.media_type),
                       pages=item.pages, visibility=visibility)
        session.add(doc)
        session.flush()
        if visibility == Visibility.restricted:
            for office in item.offices:
                session.add(DocumentOffice(document_id=doc.id or 0,
                                           office_code=_office(session, office)))
        session.add(RemoteDocument(document_id=doc.id or 0, source=source, ref=item.ref,
                                   label=item.label[:500], shareable=item.shareable,
                                   original_ref=item.original_ref))
        held[item.ref] = RemoteDocument(document_id=doc.id or 0, source=source, ref=item.ref)
    session.flush()
    _pair(session, app)


def _pair(session: Session, app: Application) -> None:
    """Pair each remote translation with its original, the document of the same dossier
    whose source reference is the translation's ``original_ref`` (how a source pairs
    them is its own rule: the OPD one is in plugins/opd_link/README.md).  An original the
    source no longer names unpairs it."""
    rows = session.exec(
        select(Document, RemoteDocument).join(RemoteDocument,
                                              RemoteDocument.document_id == Document.id)
        .where(Document.application_id == app.id)).all()
    by_ref = {remote.ref: doc.id for doc, remote in rows}
    for doc, remote in rows:
        original = by_ref.get(remote.original_ref) if remote.original_ref else None
        original = original if original != doc.id else None
        if doc.translation_of != original:
            doc.translation_of = original
            doc.is_translation = doc.is_translation or original is not None
            session.add(doc)


def store_dossier(session: Session, source: str, dossier: SourceDossier, *,
                  app: Application | None = None) -> Application | None:
    """Store the family and documents ``dossier`` brings; returns the member asked
    for (``app`` when refreshing a member reached through another's family)."""
    known = service._known_offices(session)
    stored: list[tuple[Application, SourceApplication]] = []
    for member in dossier.members:
        row = _upsert_member(session, source, dossier.ref, member, known | {member.office})
        if row is not None:
            stored.append((row, member))
    dates = {(a.office_code, a.number): a.filing_date for a, _ in stored}
    for row, member in stored:
        if row.source == source:
            _priorities(session, row, member, dates, known)
            _documents(session, source, row, member)
    session.flush()
    _join_family(session, [row for row, _ in stored])
    if app is not None:
        session.refresh(app)
        return app
    asked = _normal_number(session, dossier.office, dossier.number)
    return next((row for row, _ in stored
                 if (row.office_code, row.number) == (dossier.office.upper(), asked)),
                stored[0][0] if stored else None)


# Document bytes -------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of chunks, for :meth:`StorageBackend.put`."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def document_chunks(session: Session, host: PluginHost, store: StorageBackend, doc: Document, *,
                    max_bytes: int) -> Iterator[bytes]:
    """The document's bytes: from the file store when held, else fetched from its
    source now (guarded), stored by SHA-256 and recorded on the document, so the
    next view reads the store.  The caller commits."""
    if doc.sha256 and store.exists(doc.sha256):
        return store.iter_bytes(doc.sha256)
    remote = session.get(RemoteDocument, doc.id)
    if remote is None:
        raise errors.NotFound("the file of this document is missing here")
    guard = host.source(remote.source)
    if guard is None:
        raise SourceUnavailable(f"the {remote.source} dossier source is switched off")
    stored: StoredFile = guard.read_document(
        remote.ref, lambda chunks: store.put(_ChunkReader(chunks), max_bytes=max_bytes))
    text, pages = service.document_text(store, stored)
    doc.sha256, doc.size, doc.media_type = stored.sha256, stored.size, stored.media_type
    doc.filename = safe_filename(doc.filename, stored.media_type)
    doc.text_content = text
    doc.pages = pages or doc.pages
    session.add(doc)
    session.flush()
    return store.iter_bytes(stored.sha256)


def remote_facts(session: Session, app_ids: list[int]) -> dict[int, RemoteDossier]:
    """The remote facts (fetched, stale since, publications) of the given dossiers."""
    if not app_ids:
        return {}
    rows = session.exec(select(RemoteDossier).where(
        RemoteDossier.application_id.in_(app_ids)))  # type: ignore[attr-defined]
    return {r.application_id: r for r in rows}


def document_labels(session: Session, doc_ids: list[int]) -> dict[int, str]:
    """The source's own label of each remote document among ``doc_ids``."""
    if not doc_ids:
        return {}
    rows = session.exec(select(RemoteDocument.document_id, RemoteDocument.label).where(
        RemoteDocument.document_id.in_(doc_ids)))  # type: ignore[attr-defined]
    return {doc_id: label for doc_id, label in rows if label}


@dataclass(frozen=True)
class Freshness:
    """Where a remote dossier came from and how fresh it is, for the page banner."""

    source: str
    source_label: str
    fetched_at: datetime
    stale_since: datetime | None


def freshness(session: Session, host: PluginHost, app: Application) -> Freshness | None:
    """``None`` for a dossier that did not come from a remote source."""
    facts = session.get(RemoteDossier, app.id) if app.source != "hosted" else None
    if facts is None:
        return None
    guard = host.source(app.source)
    return Freshness(app.source, guard.label if guard is not None else app.source,
                     _utc(facts.fetched_at),
                     _utc(facts.stale_since) if facts.stale_since else None)
