"""Side-by-side comparison of two documents' text, differences marked."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from html import escape
from itertools import zip_longest

from markupsafe import Markup

WORD_RE = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class Row:
    tag: str  # equal | replace | delete | insert
    left: Markup
    right: Markup


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.replace("\f", "\n").splitlines() if line.strip()]


def _words_diff(a: str, b: str) -> tuple[Markup, Markup]:
    wa, wb = WORD_RE.findall(a), WORD_RE.findall(b)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        sa, sb = escape("".join(wa[i1:i2])), escape("".join(wb[j1:j2]))
        if op == "equal":
            left.append(sa)
            right.append(sb)
        else:
            if sa:
                left.append(f"<del>{sa}</del>")
            if sb:
                right.append(f"<ins>{sb}</ins>")
    return Markup("".join(left)), Markup("".join(right))


def compare_texts(a: str, b: str, *, max_rows: int = 5000) -> list[Row]:
    """Rows of a side-by-side view; changed lines get word-level marks."""
    la, lb = _lines(a), _lines(b)
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows.extend(Row("equal", Markup(escape(x)), Markup(escape(y)))
                        for x, y in zip(la[i1:i2], lb[j1:j2], strict=True))
        elif op == "replace":
            left, right = la[i1:i2], lb[j1:j2]
            for k in range(max(len(left), len(right))):
                x = left[k] if k < len(left) else ""
                y = right[k] if k < len(right) else ""
                mx, my = _words_diff(x, y)
                rows.append(Row("replace", mx, my))
        elif op == "delete":
            rows.extend(Row("delete", Markup(f"<del>{escape(x)}</del>"), Markup(""))
                        for x in la[i1:i2])
        else:
            rows.extend(Row("insert", Markup(""), Markup(f"<ins>{escape(y)}</ins>"))
                        for y in lb[j1:j2])
        if len(rows) >= max_rows:
            break
    return rows[:max_rows]


def side_by_side(a: str, b: str, *, max_rows: int = 5000) -> list[Row]:
    """Rows of an original beside its translation: line by line, nothing marked (the
    wording of two languages never matches, so a diff would mark everything)."""
    return [Row("pair", Markup(escape(x)), Markup(escape(y)))
            for x, y in zip_longest(_lines(a), _lines(b), fillvalue="")][:max_rows]


def similarity(a: str, b: str, *, max_words: int = 20_000) -> float:
    """Share of words the two texts have in common, in order (0..1)."""
    wa, wb = a.split()[:max_words], b.split()[:max_words]
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()
