"""Dossier document codes from any office, and WIPO ST.14 citation categories.

Every office names its documents with its own codes: the USPTO file wrapper says
``CTNF``, ``892`` or ``DRW.NONBW``, the JPO ``A131`` (with ``A131-JP`` for the
Japanese original of a translated document), the EPO ``1503`` or ``DREX``.  A
code is kept exactly as the office wrote it; nothing is refused for being
unknown.  This module only *describes* codes, so that every page, card and API
answer files a document the same way:

>>> info = describe("US", "CTNF")
>>> (info.label, info.group, info.direction)
('Non-final rejection', 'examination', 'outgoing')
>>> describe("JP", "A131-JP").label
'Notice of reasons for refusal (original language)'
>>> unknown = describe("KR", "X.99", label="Note to file")
>>> (unknown.label, unknown.group, unknown.direction, unknown.known)
('Note to file', 'other', None, False)

``group`` is where pages file the document (see :data:`DOC_GROUPS`);
``direction`` is seen from the office: ``outgoing`` left the office (an office
action, a search report sent to the applicant), ``incoming`` reached it (claims
as filed, the applicant's response), ``internal`` stayed inside (a search
strategy, an index of claims).  ``None`` means no table knows the code.

The tables: :data:`COMMON_DOC_TYPES` (the short codes offices exchange through
CASE, usable by any office) and one table per office in
:data:`OFFICE_DOC_TYPES`; an office's own entry wins over the common one.
Plugins add types through ``register_document_types()``; the host collects
them in a :class:`DocTypeRegistry` (``app.state.doc_types``).  The module-level
:func:`describe` uses the built-in tables only, for code that has no app at hand.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from caseforum.i18n import N_, Msg

DocGroup = Literal["search", "examination", "grant", "application", "applicant", "other"]
Direction = Literal["incoming", "outgoing", "internal"]

#: The groups in the order pages list them: what examiners look for first.
DOC_GROUPS: tuple[str, ...] = (
    "search", "examination", "grant", "application", "applicant", "other",
)  # fmt: skip
#: Seen from the office that holds the dossier.
DIRECTIONS: tuple[str, ...] = ("incoming", "outgoing", "internal")

#: A document code as offices write them: ``CTNF``, ``892``, ``LET.``, ``A...``,
#: ``DRW.NONBW``, ``A131-JP``.
CODE_RE = re.compile(r"[A-Z0-9.-]{1,20}", re.ASCII)
CODE_RULE = "1 to 20 characters A-Z, 0-9, '.' or '-' (as the office writes it: CTNF, " \
            "DRW.NONBW, A131-JP)"
#: the label of the original-language twin of a translated document
ORIGINAL_LANGUAGE = N_("%(label)s (original language)")
#: the suffix an office adds to the original-language twin of a translated document
_ORIGINAL_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<office>[A-Z]{2})$")


class DuplicateDocType(ValueError):
    """A plugin tried to register a code that is already taken for that office."""


class UnknownDocType(LookupError):
    """A code that no registered document type has."""


def normalise_code(code: str) -> str:
    """``code`` in canonical form (upper case, no surrounding spaces), or a
    ``ValueError`` that says what a code may look like."""
    key = code.strip().upper() if isinstance(code, str) else ""
    if not CODE_RE.fullmatch(key):
        raise ValueError(f"document code {code!r} must be {CODE_RULE}")
    return key


@dataclass(frozen=True)
class DocType:
    """One kind of dossier document: ``code`` is what the office writes,
    ``label`` what readers see, ``group`` where pages file it, ``direction``
    which way it went (``None``: not known), ``office`` the office whose code it
    is (empty: a code any office may use)."""

    code: str
    label: str
    group: DocGroup
    direction: Direction | None = None
    office: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not CODE_RE.fullmatch(self.code):
            raise ValueError(f"document type code {self.code!r} must be {CODE_RULE}, "
                             "in upper case")
        if not self.label.strip():
            raise ValueError(f"document type {self.code} needs a label")
        if self.group not in DOC_GROUPS:
            raise ValueError(
                f"document type {self.code}: group {self.group!r} is not one of "
                + ", ".join(DOC_GROUPS)
            )
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(
                f"document type {self.code}: direction {self.direction!r} is not one of "
                + ", ".join(DIRECTIONS)
            )
        if self.office and not re.fullmatch(r"[A-Z]{2}", self.office):
            raise ValueError(f"document type {self.code}: office {self.office!r} must be "
                             "a two-letter ST.3 code such as JP, or empty for any office")


@dataclass(frozen=True)
class CodeInfo:
    """What :func:`describe` tells about one office's code."""

    office: str
    code: str
    label: str
    group: str
    direction: str | None
    known: bool  # a table (or plugin) has the code: group and direction are not guesses


def _types(office: str, rows: Iterable[tuple[str, str, DocGroup, Direction | None]]
           ) -> tuple[DocType, ...]:
    return tuple(DocType(code, Msg(label), group, direction, office)
                 for code, label, group, direction in rows)


#: Codes any office may use: the short list offices exchange through WIPO CASE.
COMMON_DOC_TYPES: tuple[DocType, ...] = _types("", (
    ("ISR", N_("International search report"), "search", "outgoing"),
    ("WOISA", N_("Written opinion of the International Searching Authority"), "search",
     "outgoing"),
    ("WOSA", N_("Written opinion accompanying a national or regional search"), "search",
     "outgoing"),
    ("SRPT", N_("Search report"), "search", "outgoing"),
    ("SRNT", N_("Search strategy"), "search", "internal"),
    ("892", N_("List of references cited by the examiner (PTO-892)"), "search", "outgoing"),
    ("IPRP", N_("International preliminary report on patentability"), "examination", "outgoing"),
    ("IPER", N_("International preliminary examination report"), "examination", "outgoing"),
    ("EXRP", N_("Examination report"), "examination", "outgoing"),
    ("CTNF", N_("Non-final office action"), "examination", "outgoing"),
    ("CTFR", N_("Final office action"), "examination", "outgoing"),
    ("NOA", N_("Notice of allowance"), "grant", "outgoing"),
    ("CLM", N_("Claims"), "application", "incoming"),
    ("SPEC", N_("Description"), "application", "incoming"),
    ("ABST", N_("Abstract"), "application", "incoming"),
    ("DRW", N_("Drawings"), "application", "incoming"),
    ("AMND", N_("Amendments"), "applicant", "incoming"),
    ("REM", N_("Applicant's arguments"), "applicant", "incoming"),
    ("IDS", N_("Information disclosure statement"), "applicant", "incoming"),
    ("PPH", N_("PPH request"), "applicant", "incoming"),
    ("OTHER", N_("Other document"), "other", None),
))

# The USPTO's file-wrapper codes, as Global Dossier lists them (recorded answers in
# tests/fixtures/global-dossier).  FOR and NPL copies come mostly with the applicant's
# information disclosure statement, hence incoming; the office's own 892 is outgoing.
_US = _types("US", (
    ("CTNF", N_("Non-final rejection"), "examination", "outgoing"),
    ("CTFR", N_("Final rejection"), "examination", "outgoing"),
    ("CTRS", N_("Restriction requirement"), "examination", "outgoing"),
    ("CTAV", N_("Advisory action"), "examination", "outgoing"),
    ("INTV.SUM.APP", N_("Applicant-initiated interview summary (PTOL-413)"), "examination",
     "outgoing"),
    ("FWCLM", N_("Index of claims"), "examination", "internal"),
    ("892", N_("List of references cited by the examiner (PTO-892)"), "search", "outgoing"),
    ("1449", N_("List of references cited by the applicant and considered by the examiner"),
     "search", "outgoing"),
    ("SRNT", N_("Examiner's search strategy and results"), "search", "internal"),
    ("SRFW", N_("Search information: classification, databases, search notes"), "search",
     "internal"),
    ("FOR", N_("Foreign reference"), "search", "incoming"),
    ("NPL", N_("Non-patent literature"), "search", "incoming"),
    ("NOA", N_("Notice of allowance and fees due (PTOL-85)"), "grant", "outgoing"),
    ("IIFW", N_("Issue information (classification, examiner, claims)"), "grant", "internal"),
    ("IFEE", N_("Issue fee payment (PTO-85B)"), "grant", "incoming"),
    ("ISSUE.NTF", N_("Issue notification"), "grant", "outgoing"),
    ("N427", N_("Post-allowance communication from the applicant"), "grant", "incoming"),
    ("SPEC", N_("Specification"), "application", "incoming"),
    ("CLM", N_("Claims"), "application", "incoming"),
    ("ABST", N_("Abstract"), "application", "incoming"),
    ("DRW", N_("Drawings (black and white line drawings)"), "application", "incoming"),
    ("DRW.NONBW", N_("Drawings other than black and white line drawings"), "application",
     "incoming"),
    ("TRNA", N_("Transmittal of new application"), "application", "incoming"),
    ("BIB", N_("Bibliographic data sheet"), "application", "internal"),
    ("PD.FILED.E", N_("Priority documents retrieved electronically from another office"),
     "application", "incoming"),
    ("IDS", N_("Information disclosure statement (SB08)"), "applicant", "incoming"),
    ("REM", N_("Applicant arguments/remarks made in an amendment"), "applicant", "incoming"),
    ("A...", N_("Amendment after non-final rejection"), "applicant", "incoming"),
    ("A.NE", N_("Response after final action"), "applicant", "incoming"),
    ("A.PE", N_("Preliminary amendment"), "applicant", "incoming"),
    ("RCEX", N_("Request for continued examination"), "applicant", "incoming"),
    ("LET.", N_("Miscellaneous incoming letter"), "applicant", "incoming"),
    ("TRAN.LET", N_("Transmittal letter"), "applicant", "incoming"),
    ("DIST", N_("Terminal disclaimer filed"), "applicant", "incoming"),
    ("DISQ", N_("Terminal disclaimer review decision"), "other", "internal"),
    ("PA..", N_("Power of attorney"), "other", "incoming"),
    ("R3.73", N_("Assignee's showing of ownership (37 CFR 3.73)"), "other", "incoming"),
    ("R46C.REQ", N_("Request to correct or change the applicant (37 CFR 1.46(c))"), "other",
     "incoming"),
    ("N570", N_("Communication about the power of attorney (PTOL-308)"), "other", "outgoing"),
    ("N417", N_("Electronic filing acknowledgement receipt"), "other", "outgoing"),
    ("N417.PYMT", N_("Electronic fee payment"), "other", "incoming"),
    ("M327", N_("Miscellaneous communication to the applicant (no action count)"), "other",
     "outgoing"),
    ("WFEE", N_("Fee worksheet (SB06)"), "other", "internal"),
    ("APP.FILE.REC", N_("Filing receipt"), "other", "outgoing"),
    ("NTC.PUB", N_("Notice of publication"), "other", "outgoing"),
    ("SCORE", N_("Placeholder for supplemental content held in SCORE"), "other", "internal"),
))

# The JPO's codes as the One Portal Dossier gives them; the Japanese original of a
# translated document carries "-JP" (handled by ``describe``).  Applicant filings drop
# the law digit of the JPO's e-filing codes (A1523 amendment -> A523).
_JP = _types("JP", (
    ("A131", N_("Notice of reasons for refusal"), "examination", "outgoing"),
    ("A02", N_("Decision of refusal"), "examination", "outgoing"),
    ("A102", N_("Examiner's decision (JPO code A102)"), "examination", "outgoing"),
    ("A971015", N_("Record of communication with the applicant"), "examination", "internal"),
    ("A971007", N_("Search report by a registered search organization"), "search", "internal"),
    ("A01", N_("Decision to grant a patent"), "grant", "outgoing"),
    ("A63", N_("Application as filed (abstract)"), "application", "incoming"),
    ("A621", N_("Request for examination"), "applicant", "incoming"),
    ("A53", N_("Written opinion (applicant's arguments)"), "applicant", "incoming"),
    ("A523", N_("Written amendment"), "applicant", "incoming"),
))

# KIPO and CNIPA exchange their dossiers here with the common codes; these entries give
# those codes the office's own terms.  (The recorded answers hold no KR or CN member.)
_KR = _types("KR", (
    ("CTNF", N_("Notice of preliminary rejection"), "examination", "outgoing"),
    ("CTFR", N_("Decision of rejection"), "examination", "outgoing"),
    ("NOA", N_("Decision to grant a patent"), "grant", "outgoing"),
    ("REM", N_("Written opinion (applicant's response)"), "applicant", "incoming"),
    ("AMND", N_("Written amendment"), "applicant", "incoming"),
))
_CN = _types("CN", (
    ("CTNF", N_("Notification of the examiner's opinion (office action)"), "examination",
     "outgoing"),
    ("CTFR", N_("Decision of rejection"), "examination", "outgoing"),
    ("SRPT", N_("Search report"), "search", "outgoing"),
    ("NOA", N_("Notification to grant the patent right"), "grant", "outgoing"),
    ("REM", N_("Observations in reply to an office action"), "applicant", "incoming"),
    ("AMND", N_("Amendments"), "applicant", "incoming"),
))

# The EPO's codes as the One Portal Dossier gives them (numbers are EPO form numbers).
_EP = _types("EP", (
    ("1503", N_("European search report"), "search", "outgoing"),
    ("P0459", N_("Annex to the European search report"), "search", "outgoing"),
    ("1507", N_("Transmittal of the European search report"), "search", "outgoing"),
    ("SRCH", N_("Letter concerning search matters"), "search", "incoming"),
    ("2004", N_("Communication about the intention to grant"), "grant", "outgoing"),
    ("DREX", N_("Text intended for grant"), "grant", "outgoing"),
    ("AGRA31", N_("Approval of the text intended for grant"), "grant", "incoming"),
    ("2005", N_("Invitation to pay the fees for the intended grant"), "grant", "outgoing"),
    ("IGRA7", N_("Translations of the claims filed"), "grant", "incoming"),
    ("2006", N_("Decision to grant a European patent"), "grant", "outgoing"),
    ("2057", N_("Communication about the expiry of the opposition period"), "grant",
     "outgoing"),
    ("1001", N_("Request for grant of a European patent"), "application", "incoming"),
    ("SPEC", N_("Specification filed by fax or in a non-official language"), "application",
     "incoming"),
    ("DESC", N_("Description"), "application", "incoming"),
    ("CLMS", N_("Claims"), "application", "incoming"),
    ("ABST", N_("Abstract"), "application", "incoming"),
    ("DRAW", N_("Drawings"), "application", "incoming"),
    ("PRIODOC", N_("Priority document"), "application", "incoming"),
    ("PRIOTRAN", N_("Translation of the priority document"), "application", "incoming"),
    ("1002", N_("Designation of inventor"), "other", "incoming"),
    ("APPL", N_("Matter concerning the application"), "other", "incoming"),
    ("FREP", N_("Submission concerning representation"), "other", "incoming"),
    ("1048", N_("Communication to the designated inventor"), "other", "outgoing"),
    ("1133", N_("Notification of forthcoming publication"), "other", "outgoing"),
    ("1081", N_("Reminder: fees due and deficiencies to correct"), "other", "outgoing"),
    ("2056", N_("Bibliographic data of the application"), "other", "outgoing"),
))

#: Office-specific codes, by office.
OFFICE_DOC_TYPES: dict[str, tuple[DocType, ...]] = {
    "US": _US, "JP": _JP, "KR": _KR, "CN": _CN, "EP": _EP,
}
#: Everything built in: the common list, then each office's table.
BUILTIN_DOC_TYPES: tuple[DocType, ...] = COMMON_DOC_TYPES + tuple(
    t for table in OFFICE_DOC_TYPES.values() for t in table)
#: Kept for plugins written against the first code list.
DEFAULT_DOC_TYPES = COMMON_DOC_TYPES


def one_line_label(label: str | None) -> str:
    """A source's label on one line (recorded answers hold line breaks)."""
    return " ".join(label.split()) if isinstance(label, str) else ""


class DocTypeRegistry:
    """The code list in force: the built-in tables plus whatever plugins registered."""

    def __init__(self, types: Iterable[DocType] = ()) -> None:
        self._types: dict[tuple[str, str], DocType] = {}
        self.register_many(types)

    @classmethod
    def with_defaults(cls) -> DocTypeRegistry:
        """A registry holding :data:`BUILTIN_DOC_TYPES` only."""
        return cls(BUILTIN_DOC_TYPES)

    def register(self, doc_type: DocType) -> None:
        """Add a type; a code may be registered once per office, so two plugins can't
        silently give the same code different meanings."""
        if not isinstance(doc_type, DocType):
            raise TypeError(f"expected a DocType, got {type(doc_type).__name__}")
        if not isinstance(doc_type.label, Msg):  # a plugin's: its catalogue may have it
            doc_type = dataclasses.replace(doc_type, label=Msg(doc_type.label))
        key = (doc_type.office, doc_type.code)
        existing = self._types.get(key)
        if existing is not None:
            whose = f" of {doc_type.office}" if doc_type.office else ""
            raise DuplicateDocType(
                f"document type code {doc_type.code!r}{whose} is already registered "
                f"({existing.label!r}): choose another code"
            )
        self._types[key] = doc_type

    def register_many(self, types: Iterable[DocType]) -> None:
        for doc_type in types:
            self.register(doc_type)

    def find(self, office: str | None, code: str) -> DocType | None:
        """The office's own type for ``code``, else the common one, else ``None``."""
        if not isinstance(code, str):
            return None
        key = code.strip().upper()
        office = (office or "").strip().upper()
        return self._types.get((office, key)) or self._types.get(("", key))

    def describe(self, office: str | None, code: str, label: str | None = None) -> CodeInfo:
        """Label, group and direction of one office's document code.

        ``label`` is the office's own label when a source or an upload gave one: it
        is what readers see.  Otherwise the table's label, otherwise the code itself.
        An ``-XX`` suffix naming an office marks the original-language twin of a
        translated document (``A131-JP``): filed like its translation."""
        office = (office or "").strip().upper()
        key = code.strip().upper() if isinstance(code, str) else ""
        given = one_line_label(label)
        found = self.find(office, key)
        original = False
        if found is None and (twin := _ORIGINAL_SUFFIX.match(key)):
            found = self.find(office, twin["base"])
            original = True
        if found is None:
            return CodeInfo(office, key, given or key, "other", None, False)
        # the table's label (a message, shown in the reader's language) unless the
        # office gave one of its own
        label: str = given if given and given != found.label else found.label
        if original and not given:
            label = Msg(ORIGINAL_LANGUAGE, label=found.label)
        return CodeInfo(office, key, label, found.group, found.direction, True)

    def get(self, code: str, office: str = "") -> DocType:
        """The type for ``code`` (case and surrounding spaces ignored), or
        :class:`UnknownDocType` with the nearest codes."""
        found = self.find(office, code)
        if found is not None:
            return found
        key = code.strip().upper() if isinstance(code, str) else code
        hint = ""
        if isinstance(key, str):
            close = difflib.get_close_matches(key, self.codes(), n=3, cutoff=0.6)
            if close:
                hint = f" (did you mean {' or '.join(close)}?)"
        raise UnknownDocType(
            f"unknown document type code {code!r}{hint}: the known codes are "
            f"{', '.join(self.codes()) or 'none yet'} (DocTypeRegistry.all() lists them "
            "with labels); any other code is kept as given, filed under 'other'"
        )

    def label(self, code: str, office: str = "") -> str:
        return self.get(code, office).label

    def all(self) -> list[DocType]:
        """Every type, in registration order."""
        return list(self._types.values())

    def codes(self) -> list[str]:
        """Every known code once, in registration order."""
        return list(dict.fromkeys(code for _, code in self._types))

    def for_office(self, office: str) -> list[DocType]:
        """The codes an office's upload form offers: its own, then the common ones
        it has no own entry for."""
        office = office.strip().upper()
        own = [t for t in self._types.values() if t.office == office]
        mine = {t.code for t in own}
        return own + [t for t in self._types.values() if not t.office and t.code not in mine]

    def in_group(self, group: str) -> list[DocType]:
        if group not in DOC_GROUPS:
            raise ValueError(f"unknown group {group!r}: use one of {', '.join(DOC_GROUPS)}")
        return [t for t in self._types.values() if t.group == group]

    def __contains__(self, code: object) -> bool:
        """Whether any office (or the common list) knows ``code``."""
        if not isinstance(code, str):
            return False
        key = code.strip().upper()
        return any(c == key for _, c in self._types)

    def __len__(self) -> int:
        return len(self._types)


BUILTIN = DocTypeRegistry.with_defaults()


def describe(office: str | None, code: str, label: str | None = None) -> CodeInfo:
    """Label, group and direction of ``code`` as ``office`` uses it, from the
    built-in tables (see :meth:`DocTypeRegistry.describe`).  Never raises for an
    unknown code: it comes back filed under ``other``, direction ``None``."""
    return BUILTIN.describe(office, code, label)


#: WIPO ST.14 categories of cited documents, as printed in search reports.
ST14_CATEGORIES: dict[str, str] = {
    "X": "particularly relevant on its own (novelty or inventive step in doubt)",
    "Y": "particularly relevant when combined with another document of this category",
    "A": "general state of the art, not particularly relevant",
    "O": "refers to an oral disclosure, use, exhibition or other non-written means",
    "P": "published between the priority date and the filing date",
    "T": "later document cited for the principle or theory behind the invention",
    "E": "earlier patent document published on or after the filing date",
    "D": "cited in the application itself",
    "L": "cited for another reason, e.g. doubts on a priority claim or a date",
    "&": "member of the same patent family",
}


def validate_category(category: str) -> str:
    """Return the ST.14 category in canonical form (``" x "`` -> ``"X"``)."""
    key = category.strip().upper() if isinstance(category, str) else category
    if key not in ST14_CATEGORIES:
        raise ValueError(
            f"{category!r} is not a WIPO ST.14 citation category: use one of "
            + " ".join(ST14_CATEGORIES)
        )
    return key


def split_categories(text: str) -> tuple[str, ...]:
    """Split a combined category as printed in search reports (``"P,X"``,
    ``"X Y"``, ``"XY"``) into validated single categories."""
    parts = list(re.sub(r"[\s,/]+", "", text))
    if not parts:
        raise ValueError("no citation category given: use one of " + " ".join(ST14_CATEGORIES))
    return tuple(validate_category(c) for c in parts)
