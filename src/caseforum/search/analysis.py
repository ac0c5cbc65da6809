"""Text analysis for mixed English and CJK text.

Examiners write in English, Chinese, Japanese and Korean, often in one post.
Latin words are lower-cased and stemmed (``exchangers`` finds ``exchanger``);
runs of CJK characters, which have no spaces between words, are cut into
overlapping bigrams (``熱交換器`` -> ``熱交 交換 換器``), the usual dictionary-free
way to search them: a query is cut the same way and its bigrams must follow each
other (a phrase), so any substring of two characters or more is found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from whoosh.analysis import (
    Composable,
    LowercaseFilter,
    StemFilter,
    StopFilter,
    Token,
    Tokenizer,
)

# Han, Hiragana, Katakana, Hangul (syllables and jamo), CJK punctuation excluded
CJK_CLASS = (r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
             r"\u1100-\u11ff\u3130-\u318f")
#: a run of CJK characters, or a word
RUN = re.compile(rf"[{CJK_CLASS}]+|[^\W{CJK_CLASS}]+(?:['.][^\W{CJK_CLASS}]+)*", re.UNICODE)
_IS_CJK = re.compile(rf"[{CJK_CLASS}]")


class MixedTokenizer(Tokenizer):
    """Words for alphabetic text, bigrams for CJK runs (a lone CJK character
    stays one token)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MixedTokenizer)

    def __hash__(self) -> int:
        return hash(type(self))

    def __call__(self, value: str, positions: bool = False, chars: bool = False,
                 keeporiginal: bool = False, removestops: bool = True, start_pos: int = 0,
                 start_char: int = 0, tokenize: bool = True, mode: str = "",
                 **kwargs: Any) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        if not tokenize:
            token.original = token.text = value
            token.boost = 1.0
            if positions:
                token.pos = start_pos
            if chars:
                token.startchar, token.endchar = start_char, start_char + len(value)
            yield token
            return
        pos = start_pos
        for match in RUN.finditer(value):
            run, at = match.group(), match.start()
            if _IS_CJK.match(run):
                pieces = ([(run, 0)] if len(run) == 1
                          else [(run[i:i + 2], i) for i in range(len(run) - 1)])
            else:
                pieces = [(run, 0)]
            for text, offset in pieces:
                token.text = text
                token.boost = 1.0
                token.stopped = False
                if keeporiginal:
                    token.original = text
                if positions:
                    token.pos = pos
                if chars:
                    token.startchar = start_char + at + offset
                    token.endchar = token.startchar + len(text)
                pos += 1
                yield token


def mixed_analyzer() -> Composable:
    """The analyser of every free-text field."""
    return MixedTokenizer() | LowercaseFilter() | StopFilter(minsize=1) | StemFilter()
