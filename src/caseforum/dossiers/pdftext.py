"""Text layers of PDFs (for comparison and search) with pypdf."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PAGES = 300
MAX_CHARS = 1_000_000


def pdf_text(path: Path) -> tuple[str, int | None]:
    """Return (text, page count); a scanned PDF gives empty text.  Never raises:
    a PDF pypdf cannot read is still a document, just without a text layer."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(str(path))
        pages = len(reader.pages)
        parts: list[str] = []
        size = 0
        for page in reader.pages[:MAX_PAGES]:
            text = page.extract_text() or ""
            parts.append(text)
            size += len(text)
            if size > MAX_CHARS:
                break
        return "\n\f".join(parts)[:MAX_CHARS].strip(), pages
    except Exception as exc:  # malformed PDFs are common in real dossiers
        log.warning("no text from %s: %s", path.name, exc)
        return "", None


def plain_text(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(MAX_CHARS).decode("utf-8", errors="replace")
