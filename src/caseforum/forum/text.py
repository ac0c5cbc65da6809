"""From Markdown source to stored HTML: sanitised, numbers and mentions marked.

Numbers are found in the text *after* sanitising and wrapped in
``<span data-ref="N">`` markers (N: the reference's position); ``@name``
mentions are wrapped in ``<span data-mention="name">``.  The sanitiser removes
every ``span`` an author could write, so a marker in stored HTML always comes
from here; at display time each marker becomes a link (or a highlighted name)
or stays plain text, depending on what the viewer may see and who exists.

Where nothing is marked, because the text is not the author's new word:

* links and code (spans and blocks): the number is part of a URL or is being
  shown, not mentioned;
* quotes (``> ...``): someone else's words, whose numbers were carded (and
  whose mentions were notified) where they were first written;
* bot command lines (``/citations JP 2019-041872``): the bot answers with what
  was asked for, a card on the command as well would say it twice.  Mentions
  on such a line still count.  A line is a command line by the test the bot
  runner makes (:data:`COMMAND_RE` on the source line, code spans left out),
  whether or not a bot of that name is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caseforum.numbers import AppNumber, Reference, find_references

TAG_RE = re.compile(r"(<[^>]+>)")
MENTION_RE = re.compile(r"(?<![\w@/.])@([a-z0-9][a-z0-9._-]{1,63})\b")
#: a command starts a line: "/dossier US 16/123,456" (the bots' rule too)
COMMAND_RE = re.compile(r"^[ \t]{0,3}(/[A-Za-z][A-Za-z0-9_-]*)(?:[ \t]+(.*))?$")
_CODE_SPAN_RE = re.compile(r"`[^`\n]*`")
SKIP_TAGS = ("a", "code", "pre", "blockquote")


@dataclass(frozen=True)
class Rendered:
    html: str
    references: list[Reference]
    mentions: list[str]


def is_command_line(line: str) -> bool:
    """Whether a source line is a bot command (code spans in it do not count)."""
    return COMMAND_RE.match(_CODE_SPAN_RE.sub(" ", line)) is not None


def _open_or_close(tag: str) -> tuple[str, bool] | None:
    m = re.match(r"<(/?)([a-z0-9]+)", tag)
    if not m:
        return None
    return m.group(2), m.group(1) == "/"


def _mark(text: str, patterns: list | None, numbers: bool, refs: list[Reference],
          mentions: list[str]) -> str:
    """``text`` (escaped HTML text, no tags) with its numbers (unless ``numbers``
    is false) and mentions wrapped in markers; appends what it found."""
    found = (find_references(text, patterns) if patterns else find_references(text)) \
        if numbers else []
    spans: list[tuple[int, int, str]] = []
    for ref in found:
        spans.append((ref.start, ref.end, f'<span data-ref="{len(refs)}">'))
        refs.append(ref)
    for m in MENTION_RE.finditer(text):
        if any(start < m.end() and m.start() < end for start, end, _ in spans[:len(found)]):
            continue  # part of a number: the number wins
        spans.append((m.start(), m.end(), f'<span data-mention="{m.group(1)}">'))
        mentions.append(m.group(1))
    pieces: list[str] = []
    last = 0
    for start, end, marker in sorted(spans):
        pieces += [text[last:start], marker, text[start:end], "</span>"]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def render_post(source: str, patterns: list | None = None) -> Rendered:
    # imported here: the bots import this module for MENTION_RE at every start, and
    # markdown-it and nh3 are needed only once a post is written (cold start)
    from caseforum.markdown import LINE_END, LINE_START, render_markdown

    html = render_markdown(source, mark_line=is_command_line)
    sentinels = re.compile(f"([{LINE_START}{LINE_END}])")
    refs: list[Reference] = []
    mentions: list[str] = []
    depth = 0
    command = False  # inside the text of a bot command line
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
        for piece in sentinels.split(part):
            if piece in (LINE_START, LINE_END):
                command = piece == LINE_START
            elif piece and depth > 0:
                out.append(piece)
            elif piece:
                out.append(_mark(piece, patterns, not command, refs, mentions))
    return Rendered("".join(out), refs, list(dict.fromkeys(mentions)))


def reference_key(ref: Reference) -> tuple[str, str, str]:
    number = ref.number
    kind = "application" if isinstance(number, AppNumber) else "publication"
    return kind, number.office, number.number
