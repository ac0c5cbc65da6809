"""Jinja's i18n extension for pages in several languages, at no cost per message.

Most interface text is a fixed message: ``{{ _("Reply") }}``.  Asked at render time,
each costs a template function call (Jinja's ``Context.call``) and a catalogue
lookup; a thread page asks for about a thousand (a few per post).  So templates are
compiled once per language instead: :class:`FixedMessages` replaces a fixed message
by its translation while the template is compiled, and the page is rendered from
its language's environment (:func:`for_language`), whose compiled templates hold the
translated text as if it had been written there.

What cannot be known at compile time — messages with values (``%(name)s``), plural
forms, ``{% trans %}`` blocks — is translated when rendered, by newstyle gettext
callables reading the locale of the page being rendered (``caseforum.i18n.using``),
else the environment's default.  Both paths keep newstyle gettext's contract: the
result is safe markup, values are escaped and put in by name, ``%%`` is a percent
sign.

The language environments are overlays of the app's environment: they share its
loader, globals and filters (anything added later reaches them too) and have
template caches of their own.  The app's environment itself is that of the
instance default language; the live hub picks the environment of each watcher's
language as pages do (``caseforum.i18n.for_language``, read outside the web layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from gettext import NullTranslations
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.lexer import Token
from jinja2.runtime import Context
from markupsafe import Markup

from caseforum import i18n

#: the environment attributes this module keeps (``Environment.extend``); the
#: environments per language and the default locale are named in ``caseforum.i18n``,
#: which the live hub (outside the web layer) reads them through
_TRANSLATIONS = "caseforum_translations"
_BY_LANGUAGE = i18n.ENVIRONMENTS
_FIXED_CALLS = {"_": 1, "gettext": 1, "pgettext": 2}  # name: number of string arguments


class FixedMessages(Extension):
    """Translate ``_("...")``, ``gettext("...")`` and ``pgettext("...", "...")`` with
    no values when the template is compiled, for its environment's language."""

    def filter_stream(self, stream: Any) -> Iterable[Token]:
        translations: NullTranslations | None = getattr(self.environment, _TRANSLATIONS,
                                                       None)
        if translations is None:
            return stream  # type: ignore[no-any-return]
        return _fold(list(stream), translations)


def _fold(tokens: list[Token], translations: NullTranslations) -> Iterator[Token]:
    index = 0
    while index < len(tokens):
        token = tokens[index]
        strings = _fixed_call(tokens, index)
        if strings is not None:
            found = _translated(translations, strings)
            if found is not None:
                # ("translation"|safe): a constant, folded into the page by the compiler
                line = token.lineno
                yield from (Token(line, "lparen", "("), Token(line, "string", found),
                            Token(line, "pipe", "|"), Token(line, "name", "safe"),
                            Token(line, "rparen", ")"))
                index += 2 + 2 * len(strings)  # name ( s [, s] )
                continue
        yield token
        index += 1


def _fixed_call(tokens: list[Token], index: int) -> list[str] | None:
    """The string arguments when ``tokens[index:]`` starts a translation call with
    only literal strings (not a method of something: no dot before it)."""
    token = tokens[index]
    count = _FIXED_CALLS.get(token.value) if token.type == "name" else None
    if count is None or (index and tokens[index - 1].type == "dot"):
        return None
    wanted = ["lparen"] + ["string", "comma"] * count
    wanted[-1] = "rparen"
    window = tokens[index + 1:index + 1 + len(wanted)]
    if [t.type for t in window] != wanted:
        return None
    return [t.value for t in window if t.type == "string"]


def _translated(translations: NullTranslations, strings: list[str]) -> str | None:
    text = (translations.gettext(strings[0]) if len(strings) == 1
            else translations.pgettext(strings[0], strings[1]))
    try:
        return text % {}  # newstyle gettext formats every message ("%%" is "%")
    except (KeyError, ValueError, TypeError):
        return None  # left to the runtime call, which says what is wrong


def install(env: Environment, default: i18n.PageLocale) -> None:
    """Give ``env`` (made with ``jinja2.ext.i18n`` and :class:`FixedMessages`) the
    i18n functions and an environment per language; ``env`` itself is ``default``'s."""
    current = i18n.current

    @pass_context
    def gettext(__context: Context, __string: str, **variables: Any) -> str:
        return _finish(__context, (current() or default).translations.gettext(__string),
                       variables)

    @pass_context
    def ngettext(__context: Context, __singular: str, __plural: str, __num: int,
                 **variables: Any) -> str:
        variables.setdefault("num", __num)
        text = (current() or default).translations.ngettext(__singular, __plural, __num)
        return _finish(__context, text, variables)

    @pass_context
    def pgettext(__context: Context, __string_ctx: str, __string: str,
                 **variables: Any) -> str:
        variables.setdefault("context", __string_ctx)
        text = (current() or default).translations.pgettext(__string_ctx, __string)
        return _finish(__context, text, variables)

    @pass_context
    def npgettext(__context: Context, __string_ctx: str, __singular: str, __plural: str,
                  __num: int, **variables: Any) -> str:
        variables.setdefault("context", __string_ctx)
        variables.setdefault("num", __num)
        text = (current() or default).translations.npgettext(
            __string_ctx, __singular, __plural, __num)
        return _finish(__context, text, variables)

    # the extension's own installer switches {% trans %} to newstyle calls; its
    # wrappers are then replaced by these, which keep the same contract
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda s: s, lambda s, p, n: s if n == 1 else p, newstyle=True,
        pgettext=lambda c, s: s, npgettext=lambda c, s, p, n: s if n == 1 else p)
    env.globals.update(_=gettext, gettext=gettext, ngettext=ngettext, pgettext=pgettext,
                       npgettext=npgettext)
    env.extend(**{_TRANSLATIONS: default.translations, _BY_LANGUAGE: {default.code: env},
                  i18n.DEFAULT_LOCALE: default})
    languages: dict[str, Environment] = getattr(env, _BY_LANGUAGE)
    for code in i18n.LANGUAGES:
        if code not in languages:
            # a fresh cache: the parent's holds templates compiled for its own language
            overlay = env.overlay(cache_size=400)
            setattr(overlay, _TRANSLATIONS, i18n.translations(code))
            languages[code] = overlay


def for_language(env: Environment, code: str) -> Environment:
    """The environment that renders pages in ``code`` (``env`` for an unknown code)."""
    found: Environment = i18n.for_language(env, code)
    return found


def _finish(context: Context, text: str, variables: dict[str, Any]) -> str:
    """Newstyle gettext's last step: ``Markup`` under autoescape (values escaped),
    then the values put in by name."""
    if context.eval_ctx.autoescape:
        return Markup(text) % variables
    return text % variables
