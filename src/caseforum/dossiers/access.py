"""Applying the authorization rules to whole lists of dossiers and documents.

The rules themselves live in :mod:`caseforum.authz`; this module only feeds
them the facts (providing office, its public access, the named offices of a
restricted document) and filters, so every page, API answer, card, search
result and count sees the same thing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from caseforum import authcache
from caseforum.authz import CitationTarget, DocumentTarget, DossierTarget, Viewer, can, rule
from caseforum.models import Application, Citation, Document, DocumentOffice
from caseforum.models.account import Role

_DOC = Document.__table__  # type: ignore[attr-defined]
_NAMED = DocumentOffice.__table__  # type: ignore[attr-defined]
#: one dossier's documents, all but the (large) extracted text, with the named offices
#: of each joined in; built once, so a request only binds ``app_id``
DOCUMENT_ROWS = (
    sa_select(*(_DOC.c[name] for name in (
        "id", "code", "label", "date", "language", "is_translation", "visibility", "media_type",
        "size", "sha256", "pages", "filename", "translation_of")),
    _NAMED.c.office_code.label("named"))
    .select_from(_DOC.outerjoin(_NAMED, _NAMED.c.document_id == _DOC.c.id))
    .where(_DOC.c.application_id == bindparam("app_id"))
    .order_by(_DOC.c.date, _DOC.c.id, _NAMED.c.office_code))


@dataclass(frozen=True)
class Pair:
    """A document's side of a pair as one viewer may know it: the original it
    translates and its translations, each only when that viewer may see it."""

    translation_of: int | None = None
    translations: list[int] = field(default_factory=list)


def pairs(visible: Iterable[Any]) -> dict[int, Pair]:
    """The pairs among the documents one viewer sees of one dossier (objects or column
    rows with ``id`` and ``translation_of``), by document id.

    A pair never leaves its dossier (``service.check_original``), so the visible
    documents of that dossier are all it takes: an original the viewer may not see
    is simply not among them, and its translation then reads as unpaired, with no
    hint that there is an original."""
    docs = list(visible)
    ids = {d.id for d in docs}
    translations: dict[int, list[int]] = defaultdict(list)
    for d in docs:
        if d.translation_of in ids:
            translations[d.translation_of].append(d.id)
    return {d.id: Pair(d.translation_of if d.translation_of in ids else None,
                       sorted(translations.get(d.id, ()))) for d in docs}


@rule("document.named_offices", scope="dossiers:read")
def _may_know_named_offices(viewer: Viewer, doc: DocumentTarget) -> bool:
    """Which offices a restricted document is limited to is itself confidential:
    told to the providing office, to the named offices and to platform admins;
    anyone else who sees the document reads only "restricted"."""
    if not viewer.is_authenticated or doc.visibility != "restricted":
        return False
    if viewer.role == Role.platform_admin.value:
        return True
    return viewer.office_code == doc.office_code or viewer.office_code in doc.offices


class Access:
    """What one viewer may see, with the office facts cached for the request."""

    def __init__(self, session: Session, viewer: Viewer | None) -> None:
        self.session = session
        self.viewer = viewer or Viewer()
        self._public: dict[str, bool] | None = None
        self._named: dict[int, frozenset[str]] = {}

    def _public_access(self, office_code: str) -> bool:
        if self._public is None:
            # the office table, cached per process (authcache: cleared on any change)
            self._public = {code: o.public_access
                            for code, o in authcache.offices(self.session).items()}
        return self._public.get(office_code, False)

    def dossier(self, app: Application) -> DossierTarget:
        return DossierTarget(app.office_code, self._public_access(app.office_code))

    def can_see(self, app: Application | Row[Any] | None) -> bool:
        """Whether the dossier is visible; ``app`` may be a column row with an
        ``office_code`` (the API reads columns, not ORM objects)."""
        return app is not None and can(self.viewer, "dossier.view", DossierTarget(
            app.office_code, self._public_access(app.office_code)))

    def _named_offices(self, docs: list[Document]) -> dict[int, frozenset[str]]:
        """Named offices of the restricted documents among ``docs``; remembered for
        the request (a page or API answer asks for the same documents twice)."""
        restricted = [d.id for d in docs if d.visibility == "restricted"
                      and d.id not in self._named]
        if restricted:
            named: dict[int, set[str]] = defaultdict(set)
            for row in self.session.exec(select(DocumentOffice).where(
                    DocumentOffice.document_id.in_(restricted))):  # type: ignore[attr-defined]
                named[row.document_id].add(row.office_code)
            for doc_id in restricted:
                self._named[doc_id or 0] = frozenset(named.get(doc_id or 0, ()))
        return {d.id or 0: self._named[d.id or 0] for d in docs
                if d.visibility == "restricted" and self._named.get(d.id or 0)}

    def document_targets(
        self, docs: list[Document], apps: dict[int, Application]
    ) -> dict[int, DocumentTarget]:
        named = self._named_offices(docs)
        return {doc.id or 0: self.document_target(apps[doc.application_id].office_code,
                                                  doc.visibility,
                                                  named.get(doc.id or 0, frozenset()))
                for doc in docs}

    def document_target(self, office_code: str, visibility: Any,
                        offices: frozenset[str] = frozenset()) -> DocumentTarget:
        """The rules' facts of a document of ``office_code``'s dossier (``offices``:
        the named offices of a restricted one)."""
        return DocumentTarget(office_code=office_code,
                              public_access=self._public_access(office_code),
                              visibility=str(visibility), offices=offices)

    def shows_document(self, office_code: str, visibility: Any,
                       offices: frozenset[str] = frozenset()) -> bool:
        """Whether a document with these facts is visible: its dossier and itself
        (for callers that read the facts in SQL rather than load documents)."""
        return (can(self.viewer, "dossier.view", DossierTarget(
                    office_code, self._public_access(office_code)))
                and can(self.viewer, "document.view",
                        self.document_target(office_code, visibility, offices)))

    def named_offices(self, target: DocumentTarget) -> list[str]:
        """The offices a restricted document is limited to, sorted, for a viewer
        who may know them; an empty list for everyone else (and for documents
        that are not restricted)."""
        if can(self.viewer, "document.named_offices", target):
            return sorted(target.offices)
        return []

    def documents(self, apps: Iterable[Application]) -> list[Document]:
        """The documents of ``apps`` this viewer may see, oldest first."""
        by_id = {a.id: a for a in apps if self.can_see(a)}
        if not by_id:
            return []
        docs = list(self.session.exec(
            select(Document).where(Document.application_id.in_(list(by_id)))  # type: ignore[union-attr]
            .options(defer(Document.text_content))  # up to 1 MB each: loaded only when read
            .order_by(Document.date, Document.id)))
        targets = self.document_targets(docs, by_id)  # type: ignore[arg-type]
        return [d for d in docs if can(self.viewer, "document.view", targets[d.id or 0])]

    def document_briefs(self, apps: Iterable[Application]) -> list[Row[Any]]:
        """What :meth:`documents` answers, as column rows (``id``, ``application_id``,
        ``code``, ``date``, ``visibility``): for cards and counts, which need no
        document objects (building them was most of a live card's cost)."""
        by_id = {a.id: a for a in apps if self.can_see(a)}
        if not by_id:
            return []
        rows = list(self.session.exec(
            select(Document.id, Document.application_id, Document.code, Document.date,
                   Document.visibility)
            .where(Document.application_id.in_(list(by_id)))  # type: ignore[union-attr]
            .order_by(Document.date, Document.id)))
        targets = self.document_targets(rows, by_id)  # type: ignore[arg-type]
        return [r for r in rows if can(self.viewer, "document.view", targets[r.id])]

    def citation_count(self, apps: Iterable[Application],
                       visible_docs: dict[int, set[int]]) -> dict[int, int]:
        """How many citations each dossier shows (rule ``citation.view``), a citation
        taken from a document counting only with that dossier's own document among
        ``visible_docs`` (document ids by dossier id)."""
        app_ids = [a.id for a in apps if self.can_see(a)]
        counts: dict[int, int] = defaultdict(int)
        if app_ids:
            for app_id, doc_id in self.session.exec(
                    select(Citation.application_id, Citation.document_id).where(
                        Citation.application_id.in_(app_ids))):  # type: ignore[union-attr]
                if self.shows_citation(doc_id, visible_docs.get(app_id, set())):
                    counts[app_id] += 1
        return counts

    def document_rows(self, app_id: int,
                      office_code: str) -> list[tuple[Row[Any], list[str]]]:
        """The documents of one dossier this viewer may see, oldest first, as column
        rows (no file text) each with the named offices this viewer may be told
        (:meth:`named_offices`: empty unless restricted and the viewer may know).

        One prebuilt query on the session's connection (no ORM objects): the named
        offices come joined in, a row per office.  The same rules as
        :meth:`documents`; the dossier's own visibility is checked here too."""
        public = self._public_access(office_code)
        if not can(self.viewer, "dossier.view", DossierTarget(office_code, public)):
            return []
        docs: dict[int, Row[Any]] = {}
        named: dict[int, set[str]] = defaultdict(set)
        for row in self.session.connection().execute(DOCUMENT_ROWS, {"app_id": app_id}):
            docs.setdefault(row.id, row)
            if row.named is not None:
                named[row.id].add(row.named)
        out = []
        for doc_id, row in docs.items():
            offices = (frozenset(named.get(doc_id, ())) if row.visibility == "restricted"
                       else frozenset())
            target = DocumentTarget(office_code=office_code, public_access=public,
                                    visibility=str(row.visibility), offices=offices)
            if can(self.viewer, "document.view", target):
                out.append((row, self.named_offices(target)))
        return out

    def document(self, document_id: int) -> tuple[Document, Application] | None:
        """One document and its dossier, or ``None`` when absent *or* not visible
        (the caller answers 404 either way: existence is not revealed)."""
        doc = self.session.get(Document, document_id)
        if doc is None:
            return None
        app = self.session.get(Application, doc.application_id)
        if app is None or not self.can_see(app):
            return None
        target = self.document_targets([doc], {app.id: app})[doc.id or 0]  # type: ignore[dict-item]
        return (doc, app) if can(self.viewer, "document.view", target) else None

    def counterparts(self, doc: Document,
                     app: Application) -> tuple[Document | None, list[Document]]:
        """The original ``doc`` translates and the translations of ``doc``, those this
        viewer may see (the same dossier's: :func:`pairs`)."""
        original = None
        if doc.translation_of is not None:
            found = self.document(doc.translation_of)
            original = found[0] if found and found[0].application_id == app.id else None
        rows = list(self.session.exec(
            select(Document).where(Document.translation_of == doc.id,
                                   Document.application_id == app.id)
            .options(defer(Document.text_content)).order_by(Document.id)))
        targets = self.document_targets(rows, {app.id: app})  # type: ignore[dict-item]
        return original, [d for d in rows if can(self.viewer, "document.view",
                                                 targets[d.id or 0])]

    def citations(self, apps: Iterable[Application],
                  visible_docs: Iterable[Document]) -> list[Citation]:
        """Citations of visible dossiers; one taken from a document is shown
        only with that document (rule ``citation.view``)."""
        app_ids = [a.id for a in apps if self.can_see(a)]
        if not app_ids:
            return []
        doc_ids = {d.id for d in visible_docs if d.id is not None}
        rows = self.session.exec(select(Citation).where(
            Citation.application_id.in_(app_ids)).order_by(Citation.id))  # type: ignore[union-attr]
        return [c for c in rows if self.shows_citation(c.document_id, doc_ids)]

    def shows_citation(self, document_id: int | None, visible_doc_ids: set[int]) -> bool:
        """Whether a citation of a visible dossier is shown, given the ids of the
        documents this viewer may see in it (a citation may be a column row)."""
        return can(self.viewer, "citation.view", CitationTarget(
            from_document=document_id is not None,
            document_visible=document_id in visible_doc_ids))

    def family(self, app: Application) -> list[Application]:
        """Visible members of the family, the application itself included."""
        if app.family_id is None:
            return [app] if self.can_see(app) else []
        members = self.session.exec(select(Application).where(
            Application.family_id == app.family_id).order_by(Application.filing_date,
                                                             Application.office_code))
        return [m for m in members if self.can_see(m)]
