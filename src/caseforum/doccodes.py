"""Dossier document types and WIPO ST.14 citation categories.

Offices label the documents of a dossier with short codes (mostly the USPTO
file-wrapper codes that WIPO CASE also uses).  The codes are kept here, apart
from any storage, so plugins can add their own through
``register_document_types()`` and every page shows the same label for a code.

A :class:`DocTypeRegistry` starts empty: the host fills it from the plugin
hook, and the built-in plugin contributes :data:`DEFAULT_DOC_TYPES`.  Use
:meth:`DocTypeRegistry.with_defaults` when no plugins are involved.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

DocGroup = Literal["search", "examination", "application", "applicant", "grant", "pph", "other"]

#: The groups in the order pages list them.
DOC_GROUPS: tuple[str, ...] = (
    "search", "examination", "application", "applicant", "grant", "pph", "other",
)  # fmt: skip

_CODE_RE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,15}", re.ASCII)


class DuplicateDocType(ValueError):
    """A plugin tried to register a code that is already taken."""


class UnknownDocType(LookupError):
    """A code that no registered document type has."""


@dataclass(frozen=True)
class DocType:
    """One kind of dossier document: ``code`` is what offices exchange,
    ``label`` what readers see, ``group`` where pages file it."""

    code: str
    label: str
    group: DocGroup

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _CODE_RE.fullmatch(self.code):
            raise ValueError(
                f"document type code {self.code!r} must be 1 to 16 upper-case letters, "
                "digits, '-' or '_', as in CTNF"
            )
        if not self.label.strip():
            raise ValueError(f"document type {self.code} needs a label")
        if self.group not in DOC_GROUPS:
            raise ValueError(
                f"document type {self.code}: group {self.group!r} is not one of "
                + ", ".join(DOC_GROUPS)
            )


DEFAULT_DOC_TYPES: tuple[DocType, ...] = (
    # search
    DocType("ISR", "International search report", "search"),
    DocType("WOISA", "Written opinion of the International Searching Authority", "search"),
    DocType("WOSA", "Written opinion accompanying a national or regional search", "search"),
    DocType("SRPT", "Search report", "search"),
    DocType("SRNT", "Search strategy", "search"),
    DocType("892", "List of references cited by the examiner (PTO-892)", "search"),
    # examination
    DocType("IPRP", "International preliminary report on patentability", "examination"),
    DocType("IPER", "International preliminary examination report", "examination"),
    DocType("EXRP", "Examination report", "examination"),
    DocType("CTNF", "Non-final office action", "examination"),
    DocType("CTFR", "Final office action", "examination"),
    # grant
    DocType("NOA", "Notice of allowance", "grant"),
    # application as filed
    DocType("CLM", "Claims", "application"),
    DocType("SPEC", "Description", "application"),
    DocType("ABST", "Abstract", "application"),
    DocType("DRW", "Drawings", "application"),
    # from the applicant
    DocType("AMND", "Amendments", "applicant"),
    DocType("REM", "Applicant's arguments", "applicant"),
    DocType("IDS", "Information disclosure statement", "applicant"),
    # Patent Prosecution Highway
    DocType("PPH", "PPH request", "pph"),
    # everything else
    DocType("OTHER", "Other document", "other"),
)


def _normalise_code(code: str) -> str:
    return code.strip().upper() if isinstance(code, str) else code


class DocTypeRegistry:
    """The code list in force: the defaults plus whatever plugins registered."""

    def __init__(self, types: Iterable[DocType] = ()) -> None:
        self._types: dict[str, DocType] = {}
        self.register_many(types)

    @classmethod
    def with_defaults(cls) -> DocTypeRegistry:
        """A registry holding :data:`DEFAULT_DOC_TYPES` only."""
        return cls(DEFAULT_DOC_TYPES)

    def register(self, doc_type: DocType) -> None:
        """Add a type; a code may be registered once only, so two plugins can't
        silently give the same code different meanings."""
        if not isinstance(doc_type, DocType):
            raise TypeError(f"expected a DocType, got {type(doc_type).__name__}")
        existing = self._types.get(doc_type.code)
        if existing is not None:
            raise DuplicateDocType(
                f"document type code {doc_type.code!r} is already registered "
                f"({existing.label!r}): choose another code"
            )
        self._types[doc_type.code] = doc_type

    def register_many(self, types: Iterable[DocType]) -> None:
        for doc_type in types:
            self.register(doc_type)

    def get(self, code: str) -> DocType:
        """The type for ``code`` (case and surrounding spaces ignored)."""
        key = _normalise_code(code)
        try:
            return self._types[key]
        except (KeyError, TypeError):
            pass
        hint = ""
        if isinstance(key, str):
            close = difflib.get_close_matches(key, self._types, n=3, cutoff=0.6)
            if close:
                hint = f" (did you mean {' or '.join(close)}?)"
        raise UnknownDocType(
            f"unknown document type code {code!r}{hint}: the valid codes are "
            f"{', '.join(self.codes()) or 'none yet'} (DocTypeRegistry.all() lists them "
            "with labels)"
        )

    def label(self, code: str) -> str:
        return self.get(code).label

    def all(self) -> list[DocType]:
        """Every type, in registration order."""
        return list(self._types.values())

    def codes(self) -> list[str]:
        return list(self._types)

    def in_group(self, group: str) -> list[DocType]:
        if group not in DOC_GROUPS:
            raise ValueError(f"unknown group {group!r}: use one of {', '.join(DOC_GROUPS)}")
        return [t for t in self._types.values() if t.group == group]

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and _normalise_code(code) in self._types

    def __len__(self) -> int:
        return len(self._types)


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
