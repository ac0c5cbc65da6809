"""Tests for caseforum.markdown: ordinary rendering and a hostile corpus.

The safety checks deliberately do not reuse the module's own allow-list
constants: the checker below restates the policy independently, so a mistake
in the module's configuration cannot also weaken the test.
"""

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from caseforum import errors
from caseforum.markdown import (
    MAX_SOURCE_LENGTH,
    MarkdownTooLong,
    render_inline_preview,
    render_markdown,
    sanitize_html,
)

# --- independent safety checker ---------------------------------------------

SAFE_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6",
    "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "a": {"href", "title", "rel"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
SAFE_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {
    "href", "src", "action", "formaction", "data", "background",
    "poster", "xlink:href", "cite", "srcset", "content",
}  # fmt: skip
_STRIP_FOR_SCHEME = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")


def url_scheme_is_safe(value: str) -> bool:
    """True for relative URLs and http/https/mailto, judged the way a browser
    would after dropping whitespace and control characters."""
    compact = _STRIP_FOR_SCHEME.sub("", value).lower()
    match = _SCHEME.match(compact)
    return match is None or match.group(1) in SAFE_SCHEMES


class _SafetyChecker(HTMLParser):
    """Records every way a fragment breaks the post policy."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"tag <{tag}> not allowed")
        allowed = SAFE_ATTRIBUTES.get(tag, set())
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name not in allowed:
                self.problems.append(f"attribute {name} not allowed on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None and not url_scheme_is_safe(value):
                self.problems.append(f"unsafe URL {value!r} in {name} on <{tag}>")
            if tag == "a" and name == "rel" and value != "noopener noreferrer nofollow":
                self.problems.append(f"unexpected rel {value!r}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"end tag </{tag}> not allowed")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment survived: {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration survived: {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction survived: {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"unknown declaration survived: {data!r}")


def assert_safe_html(html: str) -> None:
    """Fail with every policy breach found in ``html``."""
    checker = _SafetyChecker()
    checker.feed(html)
    checker.close()
    assert not checker.problems, f"{checker.problems} in {html!r}"


def links(html: str) -> list[dict[str, str | None]]:
    """Attributes of every <a> in ``html``, in order."""
    found: list[dict[str, str | None]] = []

    class _Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                found.append(dict(attrs))

    parser = _Links()
    parser.feed(html)
    parser.close()
    return found


def test_checker_catches_what_it_should() -> None:
    """The checker itself must fail on hostile output, or the corpus proves nothing."""
    hostile = [
        "<script>x</script>",
        '<p onclick="x">a</p>',
        '<a href=" JaVa\tScRiPt:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<p class="x">a</p>',
        '<a href="/x" target="_blank">x</a>',
        "<!-- x -->",
    ]
    for html in hostile:
        with pytest.raises(AssertionError):
            assert_safe_html(html)
    assert_safe_html('<p><a href="/cases/1" rel="noopener noreferrer nofollow">x</a></p>')


# --- ordinary Markdown -------------------------------------------------------


def test_emphasis_strong_and_strikethrough() -> None:
    html = render_markdown("*claim* **novelty** ~~withdrawn~~")
    assert "<em>claim</em>" in html
    assert "<strong>novelty</strong>" in html
    assert "<s>withdrawn</s>" in html or "<del>withdrawn</del>" in html
    assert_safe_html(html)


def test_lists_blockquote_and_rule() -> None:
    html = render_markdown("- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n---")
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in html
    assert '<ol start="3">' in html
    assert "<blockquote>" in html and "quoted" in html
    assert "<hr>" in html
    assert_safe_html(html)


def test_code_keeps_content_escaped_and_drops_language_class() -> None:
    html = render_markdown("```python\nif a < b and '<script>':\n    pass\n```\n\n`<b>x</b>`")
    assert "<pre><code>if a &lt; b and '&lt;script&gt;':\n    pass\n</code></pre>" in html
    assert "<code>&lt;b&gt;x&lt;/b&gt;</code>" in html
    assert "class=" not in html
    assert_safe_html(html)


def test_table_with_alignment() -> None:
    html = render_markdown("| Claim | Status |\n|:------|-------:|\n| 1 | novel |")
    assert "<table>" in html and "<th" in html and "<td" in html
    assert '<th align="left">Claim</th>' in html
    assert '<td align="right">novel</td>' in html
    assert "style=" not in html
    assert_safe_html(html)


@pytest.mark.parametrize(
    "href",
    ["https://example.org/doc?a=1&b=2", "http://intranet/case", "mailto:ex@office.example",
     "/cases/42", "../notes", "#section"],
)  # fmt: skip
def test_allowed_links_keep_href_and_get_rel(href: str) -> None:
    html = render_markdown(f"[link]({href})")
    (attrs,) = links(html)
    assert attrs["href"] == href
    assert attrs["rel"] == "noopener noreferrer nofollow"
    assert "target" not in attrs
    assert_safe_html(html)


def test_link_title_is_kept() -> None:
    (attrs,) = links(render_markdown('[EPO](https://epo.example "Guidelines")'))
    assert attrs["title"] == "Guidelines"


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("The <claim 1> feature & <b>bold</b>")
    assert "&lt;claim 1&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&amp;" in html


def test_image_becomes_link_with_alt_text() -> None:
    html = render_markdown('![Figure *3*](https://intranet.example/fig3.png "Fig")')
    assert "<img" not in html
    (attrs,) = links(html)
    assert attrs["href"] == "https://intranet.example/fig3.png"
    assert attrs["title"] == "Fig"
    assert ">Figure 3</a>" in html
    assert_safe_html(html)


def test_image_without_alt_uses_url_as_text() -> None:
    html = render_markdown("![](/files/drawing.png)")
    assert '<a href="/files/drawing.png"' in html
    assert ">/files/drawing.png</a>" in html


def test_image_inside_link_becomes_plain_alt_text() -> None:
    html = render_markdown("[![badge](/b.png)](/cases/7)")
    assert "<img" not in html
    assert len(links(html)) == 1
    assert ">badge</a>" in html


def test_application_numbers_stay_in_one_text_node() -> None:
    """The dossier-card pass searches text nodes, so numbers must not be split."""
    html = render_markdown("See EP 1 234 567 and US2020/0123456 A1.")
    assert "EP 1 234 567" in html
    assert "US2020/0123456 A1" in html


# --- headings ----------------------------------------------------------------


def test_h1_is_demoted_and_levels_are_capped() -> None:
    html = render_markdown("# One\n\n## Two\n\n### Three\n\n#### Four\n\n##### Five\n\n###### Six")
    assert "<h1" not in html and "<h2" not in html
    assert "<h3>One</h3>" in html
    assert "<h4>Two</h4>" in html
    assert "<h5>Three</h5>" in html
    assert "<h6>Four</h6>" in html
    assert "<h6>Five</h6>" in html
    assert "<h6>Six</h6>" in html


def test_setext_heading_is_demoted_too() -> None:
    assert "<h3>Title</h3>" in render_markdown("Title\n=====")


# --- length limit ------------------------------------------------------------


def test_source_at_the_limit_is_rendered() -> None:
    html = render_markdown("a" * MAX_SOURCE_LENGTH)
    assert html.startswith("<p>a")


def test_overlong_source_is_refused_with_the_limit_in_the_message() -> None:
    with pytest.raises(MarkdownTooLong) as excinfo:
        render_markdown("a" * (MAX_SOURCE_LENGTH + 1))
    assert isinstance(excinfo.value, errors.TooLarge)  # a 413 wherever it reaches the web
    assert excinfo.value.status == 413
    assert str(MAX_SOURCE_LENGTH) in str(excinfo.value)
    assert excinfo.value.limit == MAX_SOURCE_LENGTH


def test_overlong_source_is_refused_by_preview_too() -> None:
    with pytest.raises(MarkdownTooLong):
        render_inline_preview("a" * (MAX_SOURCE_LENGTH + 1))


# --- preview -----------------------------------------------------------------


def test_preview_is_plain_text() -> None:
    source = (
        "# Heading\n\n*Inventive* **step** with [a link](https://x.example) and `code`.\n\n"
        "- item one\n- item two\n\n```\nblock\n```\n\n| a | b |\n|---|---|\n| c | d |"
    )
    preview = render_inline_preview(source)
    assert preview == "Heading Inventive step with a link and code. item one item two block a b c d"
    assert not re.search(r"<[a-z/!]", preview)


def test_preview_decodes_entities_and_keeps_typed_brackets_as_text() -> None:
    """The preview is text for the caller to escape, not pre-escaped HTML."""
    assert render_inline_preview("a < b && c") == "a < b && c"
    assert render_inline_preview("<b>hi</b>") == "<b>hi</b>"


def test_preview_is_truncated_at_a_word_with_ellipsis() -> None:
    preview = render_inline_preview("word " * 100, limit=42)
    assert len(preview) <= 42
    assert preview.endswith("…")
    assert preview.removesuffix("…").split() == ["word"] * len(preview.removesuffix("…").split())


def test_preview_short_text_is_unchanged_and_limit_must_be_positive() -> None:
    assert render_inline_preview("short", limit=5) == "short"
    assert render_inline_preview("", limit=5) == ""
    with pytest.raises(ValueError):
        render_inline_preview("x", limit=0)


# --- sanitize_html -----------------------------------------------------------


def test_sanitize_html_is_idempotent_on_rendered_output() -> None:
    source = (
        '# T\n\n*a* **b** ~~c~~ `d` [e](/f "g") ![h](https://i.example/j.png)\n\n'
        "1. k\n\n> l\n\n| m | n |\n|:-:|--:|\n| o | p |\n\n---\nq  \nr"
    )
    html = render_markdown(source)
    assert sanitize_html(html) == html


def test_sanitize_html_drops_script_and_style_content() -> None:
    cleaned = sanitize_html("<p>ok</p><script>alert(1)</script><style>p{}</style>")
    assert cleaned == "<p>ok</p>"


def test_sanitize_html_strips_unlisted_markup_keeping_text() -> None:
    cleaned = sanitize_html('<div class="x"><span data-n="1">EP 1</span></div>')
    assert cleaned == "EP 1"


# --- hostile corpus ----------------------------------------------------------

HOSTILE = {
    "script-tag": "<script>alert(1)</script>",
    "script-uppercase": "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "img-onerror-unclosed": '<img src="x" onerror="alert(1)"',
    "svg-onload": "<svg onload=alert(1)>",
    "svg-script": "<svg><script>alert(1)</script></svg>",
    "svg-xlink": '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "html-a-javascript": '<a href="javascript:alert(1)">x</a>',
    "md-link-javascript": "[x](javascript:alert(1))",
    "md-link-mixed-case": "[x](JaVaScRiPt:alert(1))",
    "md-link-entity": "[x](&#106;avascript:alert(1))",
    "md-link-hex-entities": "[x](&#x6A;&#x61;vascript&colon;alert(1))",
    "md-link-angle-destination": "[x](<javascript:alert(1)>)",
    "html-a-entity": '<a href="&#106;avascript:alert(1)">x</a>',
    "html-a-colon-entity": '<a href="javascript&colon;alert(1)">x</a>',
    "md-data-text-html": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "md-data-image": "[x](data:image/png;base64,iVBORw0KGgo=)",
    "html-data-link": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "md-vbscript": "[x](vbscript:msgbox(1))",
    "html-vbscript": '<a href="VBScript:msgbox(1)">x</a>',
    "iframe": '<iframe src="javascript:alert(1)"></iframe>',
    "iframe-srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "object": '<object data="javascript:alert(1)"></object>',
    "embed": '<embed src="javascript:alert(1)">',
    "style-tag": "<style>body{background:url(javascript:alert(1))}</style>",
    "style-attribute": '<p style="background:url(javascript:alert(1))" class="x">x</p>',
    "math-href": '<math href="javascript:alert(1)">x</math>',
    "math-mxss": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "noscript-mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "nested-script": "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "null-in-tag": "<scr\x00ipt>alert(1)</scr\x00ipt>",
    "unclosed-a": '<a href="javascript:alert(1)"',
    "unclosed-div": "<div onmouseover=alert(1)>hover",
    "backtick-attributes": "<img src=`x` onerror=`alert(1)`>",
    "backtick-href": "<a href=`javascript:alert(1)`>x</a>",
    "leading-space-href": '<a href=" javascript:alert(1)">x</a>',
    "control-char-href": '<a href="\x01\x02javascript:alert(1)">x</a>',
    "tab-in-scheme": '<a href="java\tscript:alert(1)">x</a>',
    "newline-entity-in-scheme": '<a href="java&#x0A;script:alert(1)">x</a>',
    "form-formaction": '<form><button formaction="javascript:alert(1)">x</button></form>',
    "input-autofocus": "<input onfocus=alert(1) autofocus>",
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base-href": '<base href="javascript:alert(1)//">',
    "link-stylesheet": '<link rel="stylesheet" href="javascript:alert(1)">',
    "autolink-javascript": "<javascript:alert(1)>",
    "autolink-uppercase": "<JAVASCRIPT:alert(1)>",
    "reference-link": "[x][ref]\n\n[ref]: javascript:alert(1)",
    "reference-link-angle": '[x][ref]\n\n[ref]: <javascript:alert(1)> "t"',
    "reference-image": "![x][ref]\n\n[ref]: javascript:alert(1)",
    "comment-breakout": "<!--><script>alert(1)</script>-->",
    "comment-bang-close": "<!-- --!><img src=x onerror=alert(1)> -->",
    "conditional-comment": "<!--[if IE]><script>alert(1)</script><![endif]-->",
    "cdata": "<![CDATA[<script>alert(1)</script>]]>",
    "details-ontoggle": "<details open ontoggle=alert(1)>",
    "target-blank": '<a href="https://ok.example" onclick="alert(1)" target="_blank">x</a>',
    "md-image-javascript": "![x](javascript:alert(1))",
    "md-image-attribute-breakout": '![x](https://ok.example/a.png" onerror="alert(1))',
    "md-link-attribute-breakout": '[x](https://ok.example/"onmouseover="alert(1))',
    "md-title-breakout": '[x](/ok "a" onmouseover=alert(1))',
    "template": "<template><script>alert(1)</script></template>",
    "xmp": "<xmp><script>alert(1)</script></xmp>",
    "textarea": "<textarea><script>alert(1)</script></textarea>",
    "body-onload": "<body onload=alert(1)>",
    "table-background": '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    "isindex": "<isindex action=javascript:alert(1) type=image>",
    "video-source": '<video><source onerror="alert(1)"></video>',
    "inline-code-script": "`<script>alert(1)</script>`",
    "md-wrapping-html": "**<img src=x onerror=alert(1)>**\n\n> <script>alert(1)</script>",
}


def _render_then_resanitize(source: str) -> str:
    return sanitize_html(render_markdown(source))


RENDERERS: dict[str, Callable[[str], str]] = {
    "render_markdown": render_markdown,
    "sanitize_html": sanitize_html,
    "render_then_resanitize": _render_then_resanitize,
}


def test_hostile_corpus_is_big_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("renderer", RENDERERS.values(), ids=RENDERERS.keys())
@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_yields_no_executable_content(
    source: str, renderer: Callable[[str], str]
) -> None:
    assert_safe_html(renderer(source))


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_preview_has_no_rendered_markup(source: str) -> None:
    """Previews carry no markup of their own; typed brackets are plain text."""
    preview = render_inline_preview(source)
    assert "\n" not in preview
    assert len(preview) <= 200


@pytest.mark.parametrize(
    "source",
    [HOSTILE[k] for k in ("md-link-javascript", "md-link-entity", "md-data-image",
                          "md-vbscript", "reference-link", "html-a-javascript")],
)  # fmt: skip
def test_dangerous_links_lose_their_href(source: str) -> None:
    for attrs in links(render_markdown(source)) + links(sanitize_html(source)):
        assert "href" not in attrs
