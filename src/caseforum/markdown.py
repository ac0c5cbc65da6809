"""Server-side Markdown rendering for forum posts.

Posts are written by examiners but read by everyone in the office, so the
output of this module is treated as the only HTML a post may contribute to a
page. Rendering happens in two layers that do not trust each other:

1. markdown-it-py parses CommonMark (plus tables and strikethrough) with raw
   HTML *disabled*: anything typed as ``<tag>`` is shown as literal text.
   Patent discussions are full of ``<claim 1>``-style brackets and pasted
   snippets, and silently dropping them would change what the author said.
2. nh3 then cleans the generated HTML against an explicit allow-list, so a
   bug or a plugin in the Markdown layer still cannot smuggle in script.

Decisions worth knowing about:

* Headings are demoted by two levels (``#`` -> ``<h3>``, ``##`` -> ``<h4>``,
  ... capped at ``<h6>``) because the page already owns ``<h1>`` (site) and
  ``<h2>`` (thread title); a post must not compete with them.
* Images are never embedded. Offices run closed networks, so remote images
  would mostly be broken, and an auto-loaded image would leak who read a post
  and when. ``![alt](url)`` becomes an ordinary link whose text is the alt
  text (or the URL when there is none); inside another link it becomes just
  the alt text, because links cannot nest.
* Links keep ``href`` only for http, https, mailto and relative URLs. Every
  link gets ``rel="noopener noreferrer nofollow"`` and no ``target``.
* Table column alignment is kept as ``align="left|center|right"`` since
  ``style`` attributes are not allowed at all.
* ``linkify`` (bare URLs becoming links) is off: it needs the extra
  ``linkify-it-py`` package, which the project does not depend on.
* A caller may ask for some source lines to be *marked* (``mark_line``): their
  text comes out between :data:`LINE_START` and :data:`LINE_END`, two
  private-use characters, so that a later pass over the HTML knows which text
  came from those lines (the forum leaves numbers on bot command lines alone).
  Both characters are taken out of the source first, so only this module puts
  them in the output.
"""

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Final

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from caseforum import errors

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "LINE_END",
    "LINE_START",
    "LINK_REL",
    "MAX_SOURCE_LENGTH",
    "MarkdownTooLong",
    "render_inline_preview",
    "render_markdown",
    "sanitize_html",
]

MAX_SOURCE_LENGTH: Final = 50_000
"""Longest post source (in characters) we agree to render; bounds CPU/memory."""

ALLOWED_TAGS: Final = frozenset(
    {
        "p", "br", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "em", "strong", "del", "s",
        "code", "pre", "blockquote",
        "ul", "ol", "li",
        "table", "thead", "tbody", "tr", "th", "td",
        "a",
    }
)  # fmt: skip
"""Every tag a rendered post may contain; anything else is unwrapped to text."""

ALLOWED_ATTRIBUTES: Final[dict[str, frozenset[str]]] = {
    "a": frozenset({"href", "title"}),
    "ol": frozenset({"start"}),
}
"""Attributes kept per tag (``rel`` is added by the cleaner, not kept)."""

_ALIGN_VALUES: Final = frozenset({"left", "center", "right"})

ALLOWED_URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})
"""Schemes kept in ``href``; relative URLs are kept as well."""

LINK_REL: Final = "noopener noreferrer nofollow"

LINE_START: Final = "\ue000"
"""Opens the text of a source line the caller asked to mark (see ``mark_line``)."""
LINE_END: Final = "\ue001"
"""Closes it."""
_SENTINELS_RE: Final = re.compile(f"[{LINE_START}{LINE_END}]")
_NEWLINE_RE: Final = re.compile(r"\r\n?|\n")

# Tags whose *content* is dropped along with the tag when they show up in HTML
# handed to ``sanitize_html``: their text is code or markup, never prose.
_CLEAN_CONTENT_TAGS: Final = frozenset(
    {"script", "style", "template", "noscript", "svg", "math", "iframe",
     "object", "embed", "textarea", "select", "title", "xmp", "noembed",
     "noframes"}
)  # fmt: skip

_HEADING_SHIFT: Final = 2
_ALIGN_STYLE_RE: Final = re.compile(r"^\s*text-align\s*:\s*(left|center|right)\s*;?\s*$")
_WHITESPACE_RE: Final = re.compile(r"\s+")


class MarkdownTooLong(errors.TooLarge):
    """Raised when a post source exceeds :data:`MAX_SOURCE_LENGTH`."""

    def __init__(self, length: int, limit: int = MAX_SOURCE_LENGTH) -> None:
        self.length = length
        self.limit = limit
        super().__init__(
            f"Markdown source is {length} characters long; the limit is {limit} characters."
        )


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep ``<ol start>`` only when it is a plain, sane number."""
    if tag == "ol" and attribute == "start":
        return value if value.isascii() and value.isdigit() and len(value) <= 9 else None
    return value


_CLEANER: Final = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(_CLEAN_CONTENT_TAGS),
    attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_filter_attribute,
    tag_attribute_values={
        "th": {"align": set(_ALIGN_VALUES)},
        "td": {"align": set(_ALIGN_VALUES)},
    },
    strip_comments=True,
    link_rel=LINK_REL,
    url_schemes=set(ALLOWED_URL_SCHEMES),
)


def _build_parser() -> MarkdownIt:
    """CommonMark with raw HTML off, plus GFM tables and strikethrough."""
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


_MD: Final = _build_parser()


def _plain_text(tokens: list[Token] | None) -> str:
    """Text of inline tokens without markup, as used for an image's alt text."""
    parts: list[str] = []
    for token in tokens or ():
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.children:
            parts.append(_plain_text(token.children))
    return "".join(parts)


def _image_replacement(image: Token, inside_link: bool) -> list[Token]:
    """Turn an image into a link (or bare alt text) so nothing is auto-loaded."""
    src = str(image.attrs.get("src", ""))
    alt = _plain_text(image.children).strip()
    text = Token("text", "", 0)
    if inside_link:
        text.content = alt
        return [text]
    text.content = alt or src
    link_open = Token("link_open", "a", 1)
    link_open.attrSet("href", src)
    title = image.attrs.get("title")
    if title:
        link_open.attrSet("title", str(title))
    return [link_open, text, Token("link_close", "a", -1)]


def _rewrite_inline(children: list[Token]) -> list[Token]:
    """Replace images in one inline run, tracking whether we are inside a link."""
    result: list[Token] = []
    link_depth = 0
    for child in children:
        if child.type == "link_open":
            link_depth += 1
        elif child.type == "link_close":
            link_depth = max(0, link_depth - 1)
        if child.type == "image":
            result.extend(_image_replacement(child, inside_link=link_depth > 0))
        else:
            result.append(child)
    return result


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _mark_lines(inline: Token, lines: list[str], mark_line: Callable[[str], bool]) -> None:
    """Put the sentinels around each line of ``inline`` whose source line
    ``mark_line`` accepts.  An inline run's lines are its source lines in order
    (``map``), separated by soft and hard breaks; the check is made on the raw
    source line, so "- /dossier ..." in a list or "> ..." in a quote is judged
    as written, prefix included."""
    if inline.map is None or not inline.children:
        return
    first = inline.map[0]
    out: list[Token] = []
    line = 0
    open_ = False

    def start() -> None:
        nonlocal open_
        number = first + line
        if number < len(lines) and mark_line(lines[number]):
            out.append(_text(LINE_START))
            open_ = True

    start()
    for child in inline.children:
        if child.type in ("softbreak", "hardbreak"):
            if open_:
                out.append(_text(LINE_END))
                open_ = False
            out.append(child)
            line += 1
            start()
        else:
            out.append(child)
    if open_:
        out.append(_text(LINE_END))
    inline.children = out


def _rewrite_tokens(tokens: list[Token]) -> None:
    """Apply the policy above to the token stream before it becomes HTML."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + _HEADING_SHIFT, 6)
            token.tag = f"h{level}"
        elif token.type in ("th_open", "td_open"):
            style = token.attrs.pop("style", None)
            match = _ALIGN_STYLE_RE.match(str(style)) if style is not None else None
            if match:
                token.attrSet("align", match.group(1))
        elif token.type == "inline" and token.children:
            token.children = _rewrite_inline(token.children)


def sanitize_html(html: str) -> str:
    """Clean any HTML fragment down to the post allow-list.

    Exposed on its own so code that post-processes rendered posts (for example
    replacing application numbers with dossier-card placeholders) can
    re-sanitise its result. Note that anything it adds which is not on the
    allow-list (a ``<span data-...>``, say) is removed by this call, so such
    markup must be inserted after the final sanitise or the allow-list
    extended deliberately. Cleaning is idempotent: already-clean output passes
    through unchanged.
    """
    return _CLEANER.clean(html)


def _check_length(source: str) -> None:
    """Refuse oversized input before any parsing work is done."""
    if len(source) > MAX_SOURCE_LENGTH:
        raise MarkdownTooLong(len(source))


def render_markdown(source: str, mark_line: Callable[[str], bool] | None = None) -> str:
    """Render a post's Markdown to sanitised HTML safe to embed in a page.

    ``mark_line``: called with each source line that holds running text (not
    code); the text of the lines it accepts is put between :data:`LINE_START`
    and :data:`LINE_END`.

    Raises :class:`MarkdownTooLong` if ``source`` exceeds
    :data:`MAX_SOURCE_LENGTH` characters.
    """
    _check_length(source)
    source = _SENTINELS_RE.sub("\ufffd", source)
    env: dict[str, object] = {}
    tokens = _MD.parse(source, env)
    _rewrite_tokens(tokens)
    if mark_line is not None:
        lines = _NEWLINE_RE.split(source)  # as markdown-it counts lines (not splitlines)
        for token in tokens:
            if token.type == "inline":
                _mark_lines(token, lines, mark_line)
    return sanitize_html(_MD.renderer.render(tokens, _MD.options, env))


# Elements after which the preview needs a word gap so blocks don't run together.
_BLOCK_TAGS: Final = frozenset(
    {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
     "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"}
)  # fmt: skip


class _TextCollector(HTMLParser):
    """Collects the text of sanitised HTML, turning block boundaries into spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def render_inline_preview(source: str, limit: int = 200) -> str:
    """Return a short plain-text version of a post for notifications.

    The result contains no markup produced by rendering: emphasis, links,
    code fences and so on are reduced to their text and whitespace is
    collapsed. It is *text*, not HTML: characters the author typed such as
    ``<`` or ``&`` come back as-is, so callers must escape it like any other
    user text (Jinja autoescaping does). Longer text is cut at a word
    boundary where possible and ends with an ellipsis; the result is never
    longer than ``limit`` characters.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    collector = _TextCollector()
    collector.feed(render_markdown(source))
    collector.close()
    text = _WHITESPACE_RE.sub(" ", "".join(collector.parts)).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"
