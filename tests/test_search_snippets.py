"""Snippets: the window around the first query word, every query word in it marked."""

from __future__ import annotations

from caseforum.search.snippets import WIDTH, snippet


def test_stemmed_words_are_marked_and_others_are_not() -> None:
    text = "A lithium battery, two batteries and a battered case: sulfide electrolytes."
    out = snippet(text, {"batteri", "electrolyt"})
    assert out is not None
    assert str(out).count("<mark") == 3
    assert '<mark class="hit">batteries</mark>' in out and "battered" in out
    assert '<mark class="hit">battered' not in out


def test_markup_in_the_text_is_escaped() -> None:
    out = snippet("Another <script>alert(1)</script> zebrafin remark", {"zebrafin"})
    assert str(out) == ('Another &lt;script&gt;alert(1)&lt;/script&gt; '
                        '<mark class="hit">zebrafin</mark> remark')


def test_cjk_bigrams_in_a_row_are_one_mark() -> None:
    out = snippet("アルジロダイト型結晶構造を有する硫化物固体電解質", {"結晶", "晶構", "構造"})
    assert out is not None and '<mark class="hit">結晶構造</mark>' in out


def test_a_far_match_in_a_long_text_is_shown_in_a_window() -> None:
    text = "filler " * 20_000 + "the gossamer louvre " + "tail " * 100
    out = snippet(text, {"gossam"})
    assert out is not None and out.startswith("…") and out.endswith("…")
    assert '<mark class="hit">gossamer</mark>' in out
    assert len(out) < WIDTH + 80


def test_no_query_word_no_snippet() -> None:
    assert snippet("nothing to see", {"zebra"}) is None
    assert snippet("zebras everywhere", set()) is None
