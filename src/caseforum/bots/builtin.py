"""The built-in bots: dossier cards, family citations, new-content notes.

Their answers are short: the number the bot understood, then the block the
forum draws for each reader (the card or the citations table says the rest).
The text never depends on whether a dossier exists or whom it is visible to:
every reader of the thread sees the same text, in the asker's language.  A
reader who may not see the dossier gets, instead of the block, one line saying
there is no dossier they may see for that number: the same words for a missing
dossier and a hidden one.
"""

from __future__ import annotations

from typing import Any

from caseforum.bots.base import (
    Bot,
    BotAnswer,
    BotEvent,
    BotPost,
    Triggers,
    citations_embed,
    document_embed,
    dossier_embed,
)
from caseforum.bots.context import BotContext
from caseforum.i18n import N_, Msg
from caseforum.numbers import AppNumber, NumberError, find_references

#: how many numbers one post may ask about at once
MAX_NUMBERS = 5


def _code(text: str) -> str:
    """Show user input as code: it stays literal and is not turned into a card."""
    return "`" + text.replace("`", "'").strip()[:80] + "`"


def _numbers_as_code(text: str) -> str:
    """Put the example numbers of an error message in code, so that they do not
    become cards (or references of the thread) of their own."""
    out, last = [], 0
    for ref in find_references(text):
        out += [text[last:ref.start], _code(ref.text)]
        last = ref.end
    return "".join(out) + text[last:]


def _requests(post: BotPost, ctx: BotContext, example: str) -> tuple[list[str], str | None]:
    """The numbers asked about (what followed each command or mention, else the
    first number in the post), or a hint when there is none."""
    asked = [inv.args for inv in ctx.invocations if inv.args][:MAX_NUMBERS]
    if not asked:
        apps = [r for r in ctx.references if r.kind == "application"] or ctx.references
        asked = [apps[0].text] if apps else []
    if not asked:
        return [], ctx.tr(Msg("Write an application or publication number after it, as "
                              "in `%(example)s`.", example=example))
    return asked, None


def _answer(ctx: BotContext, asked: list[str], make: Any) -> BotAnswer:
    """One line per number: the number as understood (the reader's block follows),
    or why it could not be read.  No look-up here: the forum finds each dossier
    with each reader's rights, publication numbers included."""
    lines: list[str] = []
    embeds: list[dict[str, Any]] = []
    for text in asked:
        try:
            number = ctx.parse_number(text)
        except NumberError as exc:
            lines.append(ctx.tr(Msg("I can't read %(text)s as a number: %(reason)s",
                                    text=_code(text), reason=_numbers_as_code(str(exc)))))
            continue
        lines.append(_code(str(number)))
        kind = "application" if isinstance(number, AppNumber) else "publication"
        embeds.append(make(number.office, number.number, number_kind=kind,
                           asked=str(number)))
    return BotAnswer("\n\n".join(lines), embeds)


class DossierBot(Bot):
    name = "dossier"
    display_name = "Dossier bot"
    description = ("Answers `/dossier NUMBER` with the dossier's card: office, title, "
                   "family, latest documents, as each reader may see them.")
    triggers = Triggers(commands=("/dossier",))

    def handle(self, post: BotPost, ctx: BotContext) -> BotAnswer | None:
        asked, hint = _requests(post, ctx, "/dossier US 16/123,456")
        if hint:
            return BotAnswer(hint)
        return _answer(ctx, asked, dossier_embed)


class CitationBot(Bot):
    name = "citations"
    display_name = "Citation bot"
    description = ("`@citations NUMBER` or `/citations NUMBER`: the citations of every "
                   "family member across offices, grouped by cited document, with the "
                   "citing office, ST.14 category and claims.")
    triggers = Triggers(commands=("/citations",), mention=True)

    def handle(self, post: BotPost, ctx: BotContext) -> BotAnswer | None:
        asked, hint = _requests(post, ctx, "@citations US 16/123,456")
        if hint:
            return BotAnswer(hint)
        return _answer(ctx, asked, citations_embed)


class NewContentBot(Bot):
    name = "new-content"
    display_name = "New-content bot"
    description = ("Posts a short note in every thread that discusses a dossier when a "
                   "new document arrives in it.")
    triggers = Triggers(events=("document.added",))

    def handle_event(self, event: BotEvent, ctx: BotContext) -> BotAnswer | None:
        document_id = event.payload.get("document_id")
        if not document_id:
            return None
        # the text says nothing about the document: only readers who may see it get the embed
        return BotAnswer(ctx.tr(N_("New content in a dossier discussed here.")),
                         [document_embed(int(document_id))])


BUILTIN_BOTS: tuple[type[Bot], ...] = (DossierBot, CitationBot, NewContentBot)
