"""From Markdown source to stored HTML: sanitised, numbers and mentions marked.

Numbers are found in the text *after* sanitising, outside links and code,
and wrapped in ``<span data-ref="N">`` markers (N: the reference's position).
The sanitiser removes every ``span`` an author could write, so a marker in
stored HTML always comes from here; at display time each marker becomes a
link or stays plain text, depending on what the viewer may see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caseforum.numbers import AppNumber, Reference, find_references

TAG_RE = re.compile(r"(<[^>]+>)")
MENTION_RE = re.compile(r"(?<![\w@/.])@([a-z0-9][a-z0-9._-]{1,63})\b")
SKIP_TAGS = ("a", "code", "pre")


@dataclass(frozen=True)
class Rendered:
    html: str
    references: list[Reference]
    mentions: list[str]


def _open_or_close(tag: str) -> tuple[str, bool] | None:
    m = re.match(r"<(/?)([a-z0-9]+)", tag)
    if not m:
        return None
    return m.group(2), m.group(1) == "/"


def render_post(source: str, patterns: list | None = None) -> Rendered:
    # imported here: the bots import this module for MENTION_RE at every start, and
    # markdown-it and nh3 are needed only once a post is written (cold start)
    from caseforum.markdown import render_markdown

    html = render_markdown(source)
    refs: list[Reference] = []
    mentions: list[str] = []
    depth = 0
    out: list[str] = []
    for part in TAG_RE.split(html):
        if not part:
            continue
        if part.startswith("<"):
            info = _open_or_close(part)
            if info and info[0] in SKIP_TAGS:
                depth += -1 if info[1] else 1
            out.append(part)
            continue
        if depth > 0:
            out.append(part)
            continue
        found = find_references(part, patterns) if patterns else find_references(part)
        last = 0
        pieces: list[str] = []
        for ref in found:
            pieces.append(part[last:ref.start])
            pieces.append(f'<span data-ref="{len(refs)}">{part[ref.start:ref.end]}</span>')
            refs.append(ref)
            last = ref.end
        pieces.append(part[last:])
        text = "".join(pieces)
        mentions.extend(m.group(1) for m in MENTION_RE.finditer(part))
        out.append(text)
    return Rendered("".join(out), refs, list(dict.fromkeys(mentions)))


def reference_key(ref: Reference) -> tuple[str, str, str]:
    number = ref.number
    kind = "application" if isinstance(number, AppNumber) else "publication"
    return kind, number.office, number.number
