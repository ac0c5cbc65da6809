"""The Global Dossier wire format, read into the source contract's plain data.

Real answers are untidy: most fields may be ``null``, strings carry line breaks and
trailing spaces, codes carry dots (``LET.``, ``A...``), dates come as epoch
milliseconds (``appDate``, ``legalDate``) and/or ``MM/DD/YYYY`` strings
(``appDateStr``, ``legalDateStr``), and a translated JP document is listed beside
its original-language twin (``A131`` and ``A131-JP``, ``docId`` and ``docId_JP``).
Every reader here takes ``Any`` and never trusts a field to be there.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from caseforum.sources import (
    SourceApplication,
    SourceDocument,
    SourceDossier,
    SourcePriority,
    SourcePublication,
)

#: the language of an office's original-language documents (the ``-CC`` twins)
LANGUAGES = {"JP": "ja", "KR": "ko", "CN": "zh", "EP": "en", "US": "en"}
MEDIA_TYPES = {"PDF": "application/pdf", "XML": "application/xml", "TIF": "image/tiff",
               "TIFF": "image/tiff", "PNG": "image/png", "JPG": "image/jpeg"}
_SPACES = re.compile(r"\s+")
_MDY = re.compile(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
_CODE = re.compile(r"[A-Z0-9.\-]{1,20}")


def text(value: Any) -> str:
    """A string field, with line breaks and runs of spaces made single spaces."""
    return _SPACES.sub(" ", value).strip() if isinstance(value, str) else ""


def when(millis: Any, mdy: Any = None) -> date | None:
    """A date from ``MM/DD/YYYY`` (the office's calendar day) or, failing that, epoch
    milliseconds (read in UTC)."""
    if isinstance(mdy, str) and (m := _MDY.fullmatch(mdy)):
        try:
            return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        except ValueError:
            pass
    if isinstance(millis, int | float) and not isinstance(millis, bool):
        try:
            return datetime.fromtimestamp(millis / 1000, UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def code_of(value: Any) -> str:
    """The office's document code as given (upper-cased, spaces dropped); ``UNKNOWN``
    when the service left it out or sent something that is not a code."""
    code = text(value).upper().replace(" ", "")
    return code if _CODE.fullmatch(code) else "UNKNOWN"


def documents(answer: dict[str, Any] | None, office: str,
              fallback: date | None) -> tuple[SourceDocument, ...] | None:
    """The documents of a document-list answer (``docs`` and ``officeActionDocs``, the
    latter repeating some of the former), or ``None`` when there is no list."""
    if not isinstance(answer, dict) or not isinstance(answer.get("docs"), list):
        return None
    number = text(answer.get("docNumber"))
    country = text(answer.get("country")) or office
    items: dict[str, dict[str, Any]] = {}
    for item in _list(answer.get("docs")) + _list(answer.get("officeActionDocs")):
        doc_id = text(item.get("docId"))
        if doc_id and doc_id not in items:
            items[doc_id] = item
    twin_suffix = f"-{office}"
    out = []
    for doc_id, item in items.items():
        code = code_of(item.get("docCode"))
        day = when(item.get("legalDate"), item.get("legalDateStr")) or fallback
        if day is None:
            continue
        fmt = text(item.get("docFormat")).upper() or "PDF"
        pages = item.get("numberOfPages")
        pages = pages if isinstance(pages, int) and pages > 0 else None
        original = original_twin(items, doc_id, item, office)
        is_original = code.endswith(twin_suffix) and office != "US"
        shareable = item.get("shareable")
        out.append(SourceDocument(
            ref=f"{country}/{number}/{doc_id}/{pages or 1}/{fmt}",
            code=code,
            label=text(item.get("docDesc")) or text(item.get("docCodeDesc")) or code,
            date=day,
            language=LANGUAGES.get(office, "en") if is_original else "en",
            is_translation=original is not None,
            media_type=MEDIA_TYPES.get(fmt, "application/pdf"),
            pages=pages,
            shareable=shareable if isinstance(shareable, bool) else None,
            original_ref=(f"{country}/{number}/{doc_id}_{office}/"
                          f"{_pages(original)}/{text(original.get('docFormat')).upper() or 'PDF'}"
                          if original is not None else None),
        ))
    return tuple(out)


def original_twin(items: dict[str, dict[str, Any]], doc_id: str, item: dict[str, Any],
                  office: str) -> dict[str, Any] | None:
    """The original-language twin of a translated document, or ``None``.

    The recorded JP lists show why the code alone cannot pair them: five translations
    share code ``A63`` and one date (abstract, claims, description, drawings, request),
    each with an ``A63-JP`` twin. What is unique is the document identity: the twin's
    ``docId`` is the translation's with ``_JP`` added (``Claims_51702045047`` and
    ``Claims_51702045047_JP``). So the twin is found by ``docId`` and confirmed by the
    code (the translation's with ``-JP`` added) and the same legal date; a list where
    these disagree pairs nothing rather than the wrong two."""
    twin = items.get(f"{doc_id}_{office}")
    if twin is None or office == "US":
        return None
    if code_of(twin.get("docCode")) != f"{code_of(item.get('docCode'))}-{office}":
        return None
    if when(twin.get("legalDate"), twin.get("legalDateStr")) != when(
            item.get("legalDate"), item.get("legalDateStr")):
        return None
    return twin


def _pages(item: dict[str, Any]) -> int:
    pages = item.get("numberOfPages")
    return pages if isinstance(pages, int) and pages > 0 else 1


def member(item: dict[str, Any], docs: tuple[SourceDocument, ...] | None) -> SourceApplication:
    office = text(item.get("countryCode")).upper()
    filed = when(item.get("appDate"), item.get("appDateStr"))
    pubs = tuple(
        SourcePublication(number=text(p.get("pubNum")), kind=text(p.get("kindCode")),
                          date=when(p.get("pubDate"), p.get("pubDateStr")))
        for p in _list(item.get("pubList")) if text(p.get("pubNum")))
    claims = tuple(
        SourcePriority(office=text(c.get("country")).upper(), number=text(c.get("docNumber")),
                       kind=text(c.get("kindCode")))
        for c in _list(item.get("priorityClaimList"))
        if text(c.get("country")) and text(c.get("docNumber")))
    names = item.get("applicantNames")
    return SourceApplication(
        office=office, number=text(item.get("appNum")),
        display_number=text(item.get("appNum")), filing_date=filed,
        kind_code=text(item.get("kindCode")), title=text(item.get("title")),
        applicants=tuple(text(n) for n in names if text(n)) if isinstance(names, list) else (),
        publications=pubs, priorities=claims, documents=docs)


def members(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in _list(answer.get("list"))
            if text(m.get("countryCode")) and text(m.get("appNum"))]


def dossier(ref: str, office: str, number: str,
            items: list[tuple[dict[str, Any], tuple[SourceDocument, ...] | None]]
            ) -> SourceDossier:
    return SourceDossier(ref=ref, office=office, number=number,
                         members=tuple(member(item, docs) for item, docs in items))
