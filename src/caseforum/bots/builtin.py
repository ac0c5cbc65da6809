"""The built-in bots: dossier cards, family citations, new-content notes.

Their texts never depend on whether a dossier exists or whom it is visible
to: every reader of the thread sees the same text, but the embeds under it
are rendered for each reader.  A reader who may not see the dossier sees no
card, and the text tells them what that means, without saying whether the
dossier exists.
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
from caseforum.numbers import NumberError, find_references

#: how many numbers one post may ask about at once
MAX_NUMBERS = 5
NO_CARD = ("Each reader sees this as they may see it; where nothing shows, "
           "I can't show a dossier for that number.")


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
        return [], f"Write an application or publication number after it, as in `{example}`."
    return asked, None


def _answer(ctx: BotContext, asked: list[str], headline: str,
            make: Any) -> BotAnswer:
    lines: list[str] = []
    embeds: list[dict[str, Any]] = []
    readable = False
    for text in asked:
        try:
            number = ctx.parse_number(text)
            key = ctx.dossier_key(text)
        except NumberError as exc:
            lines.append(f"- I can't read {_code(text)} as a number: "
                         f"{_numbers_as_code(str(exc))}")
            continue
        readable = True
        lines.append(f"- {_code(str(number))}")
        if key is not None:  # None only for a publication the asker cannot see
            embeds.append(make(*key))
    if readable:
        lines += ["", NO_CARD]
    return BotAnswer("\n".join([headline, "", *lines]), embeds)


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
        return _answer(ctx, asked, "Dossier card:", dossier_embed)


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
        return _answer(ctx, asked, "Citations across the family, grouped by cited document:",
                       citations_embed)


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
        return BotAnswer("New content in a dossier discussed here.",
                         [document_embed(int(document_id))])


BUILTIN_BOTS: tuple[type[Bot], ...] = (DossierBot, CitationBot, NewContentBot)
