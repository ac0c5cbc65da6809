"""What a bot is: its triggers, what it is handed, what it answers.

A bot never writes to the database.  It reads through its context and
returns a :class:`BotAnswer` (Markdown text plus *embeds*); the runner posts
the answer as the bot's user.  The text is the same for every reader of the
thread, so it must not depend on what the asker may see; anything taken from
a dossier goes into an embed, which the forum renders separately for each
reader (see :mod:`caseforum.forum.embeds`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from caseforum.forum.text import COMMAND_RE, MENTION_RE

#: a bot's name is also the username of its user, so it follows the username rules
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
#: code spans and fenced blocks: a command written there is being talked about, not used
_CODE_RE = re.compile(r"^(```|~~~).*?^\1[ \t]*$|`[^`\n]*`", re.DOTALL | re.MULTILINE)
#: embed kinds the forum knows how to render per reader
EMBED_KINDS = frozenset({"dossier", "citations", "document"})


class BotError(Exception):
    """Raise from ``handle`` to tell the asker why there is no answer.

    The message goes to the asker as it is; any other exception is reported to
    them only as "an error", since its text may hold internal details.
    """


@dataclass(frozen=True)
class Triggers:
    """When the runner hands a bot a post (or an event).

    ``commands``: words such as ``"/dossier"`` at the start of a line.
    ``mention``: the post mentions the bot's user (``@<name>``).
    ``on_reference``: the post mentions any application or publication number.
    ``events``: event kinds about a dossier (``"document.added"``); the answer
    is posted in every thread that references that dossier.
    """

    commands: tuple[str, ...] = ()
    mention: bool = False
    on_reference: bool = False
    events: tuple[str, ...] = ()

    @classmethod
    def coerce(cls, value: Any, name: str) -> Triggers:
        """Accept a ``Triggers`` or a plain list such as ``["/echo", "@echo"]``."""
        if isinstance(value, Triggers):
            triggers = value
        elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
            items = [str(v) for v in value]
            odd = [v for v in items if not v.startswith(("/", "@"))]
            if odd:
                raise ValueError(f"trigger {odd[0]!r} is neither a /command nor an @mention")
            mentions = {v[1:] for v in items if v.startswith("@")}
            if mentions - {name}:
                raise ValueError(f"a bot can be mentioned only by its own name, @{name}")
            triggers = cls(commands=tuple(v for v in items if v.startswith("/")),
                           mention=bool(mentions))
        else:
            raise ValueError("triggers must be a Triggers object or a list of strings")
        for command in triggers.commands:
            if not re.fullmatch(r"/[a-z][a-z0-9_-]*", command):
                raise ValueError(f"command {command!r} must be '/' and lower-case letters")
        return triggers

    @property
    def labels(self) -> list[str]:
        """Human-readable triggers for the admin page."""
        labels = list(self.commands)
        if self.mention:
            labels.append("@mention")
        if self.on_reference:
            labels.append("any number")
        labels.extend(f"event {kind}" for kind in self.events)
        return labels


@dataclass(frozen=True)
class Invocation:
    """One reason the bot was called: ``trigger`` is command, mention or reference;
    ``args`` is the rest of the line after the command or mention."""

    trigger: str
    name: str
    args: str = ""


@dataclass(frozen=True)
class BotPost:
    """A read-only copy of the post the bot was called for."""

    id: int
    thread_id: int
    author_id: int
    author: str  # username
    author_office: str
    body: str  # the Markdown source
    created_at: datetime
    reply_to_id: int | None = None


@dataclass(frozen=True)
class BotThread:
    id: int
    title: str
    category_id: int | None
    is_private: bool


@dataclass(frozen=True)
class BotReference:
    """A number found in the post, as stored: ``kind`` application or publication."""

    kind: str
    office: str
    number: str
    text: str


@dataclass(frozen=True)
class BotEvent:
    """A read-only copy of the event an event-triggered bot was called for."""

    id: int
    kind: str
    payload: dict[str, Any]


@dataclass
class BotAnswer:
    """The answer: Markdown ``text`` seen by every reader, and ``embeds`` that
    the forum renders for each reader as they may see them."""

    text: str
    embeds: list[dict[str, Any]] = field(default_factory=list)

    def check(self) -> BotAnswer:
        """Refuse an answer the forum could not show, before anything is posted."""
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError("the answer's text is empty")
        for embed in self.embeds:
            if not isinstance(embed, dict) or embed.get("kind") not in EMBED_KINDS:
                raise ValueError(f"unknown embed {embed!r}: use one of {sorted(EMBED_KINDS)}")
        return self


def _dossier_block(kind: str, office: str, number: str, number_kind: str,
                   asked: str | None) -> dict[str, Any]:
    embed: dict[str, Any] = {"kind": kind, "office": office, "number": number}
    if number_kind == "publication":
        embed["number_kind"] = "publication"
    elif number_kind != "application":
        raise ValueError("number_kind is application or publication")
    if asked:
        embed["asked"] = asked
    return embed


def dossier_embed(office: str, number: str, *, number_kind: str = "application",
                  asked: str | None = None) -> dict[str, Any]:
    """A dossier card, for readers who may see the dossier.

    ``number_kind="publication"``: ``number`` is a publication number (the forum
    finds its dossier for each reader).  ``asked``: the number as the question
    wrote it; a reader who may not see the dossier gets one line saying so,
    naming only that (already public) text.  Without it they get nothing."""
    return _dossier_block("dossier", office, number, number_kind, asked)


def citations_embed(office: str, number: str, *, number_kind: str = "application",
                    asked: str | None = None) -> dict[str, Any]:
    """The family's citations grouped by cited document, as each reader may see them
    (``number_kind`` and ``asked`` as for :func:`dossier_embed`)."""
    return _dossier_block("citations", office, number, number_kind, asked)


def document_embed(document_id: int, label: str | None = None) -> dict[str, Any]:
    """A link to one document, for readers who may see it."""
    embed: dict[str, Any] = {"kind": "document", "document_id": int(document_id)}
    if label:
        embed["label"] = label
    return embed


class Bot:
    """Convenient base class; any object with the same attributes will do.

    Subclasses set ``name``, ``description`` and ``triggers`` and override
    :meth:`handle` (post triggers) and/or :meth:`handle_event` (event triggers).
    Both run in a worker thread with a time limit and must not write to the
    database: return an answer, or ``None`` for no answer.
    """

    name: str = ""
    display_name: str = ""
    description: str = ""
    triggers: Triggers = Triggers()

    def handle(self, post: BotPost, ctx: Any) -> BotAnswer | None:
        return None

    def handle_event(self, event: BotEvent, ctx: Any) -> BotAnswer | None:
        return None


@dataclass(frozen=True)
class LoadedBot:
    """A registered bot whose name and triggers were checked."""

    bot: Any
    name: str
    triggers: Triggers
    display_name: str
    description: str

    @property
    def module(self) -> str:
        return type(self.bot).__module__


def load_bots(found: Iterable[Any]) -> tuple[list[LoadedBot], list[str]]:
    """Check the registered bots; returns the usable ones and a problem per refused one
    (the runner logs it, the admin page shows it; the other bots run)."""
    loaded: list[LoadedBot] = []
    problems: list[str] = []
    seen: set[str] = set()
    for bot in found:
        name = getattr(bot, "name", None)
        try:
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise ValueError(f"name {name!r} must be 2-64 lower-case letters, digits, "
                                 "'.', '_' or '-' (it is the bot's username)")
            if name in seen:
                raise ValueError(f"another bot is already called {name!r}")
            if not callable(getattr(bot, "handle", None)) and \
                    not callable(getattr(bot, "handle_event", None)):
                raise ValueError("it has neither handle(post, ctx) nor handle_event(event, ctx)")
            triggers = Triggers.coerce(getattr(bot, "triggers", Triggers()), name)
        except ValueError as exc:
            problems.append(f"bot {name or bot!r} ({type(bot).__module__}) refused: {exc}")
            continue
        seen.add(name)
        loaded.append(LoadedBot(
            bot=bot, name=name, triggers=triggers,
            display_name=str(getattr(bot, "display_name", "") or f"{name.capitalize()} bot"),
            description=str(getattr(bot, "description", "") or "")))
    return loaded, problems


def _plain(body: str) -> list[str]:
    """The post's lines without code and quotes: a command or mention quoted
    from someone else, or shown in code, is not a new request."""
    lines = _CODE_RE.sub(" ", body).splitlines()
    return [line for line in lines if not line.lstrip().startswith(">")]


def find_invocations(name: str, triggers: Triggers, body: str,
                     references: list[BotReference]) -> list[Invocation]:
    """Why (and how often) a post calls this bot; empty when it does not."""
    found: list[Invocation] = []
    lines = _plain(body)
    if triggers.commands:
        for line in lines:
            m = COMMAND_RE.match(line)
            if m and m.group(1).lower() in triggers.commands:
                found.append(Invocation("command", m.group(1).lower(), (m.group(2) or "").strip()))
    if triggers.mention:
        for line in lines:
            for m in MENTION_RE.finditer(line):
                if m.group(1) == name:
                    found.append(Invocation("mention", f"@{name}", line[m.end():].strip()))
    if triggers.on_reference:
        found.extend(Invocation("reference", ref.text) for ref in references)
    return found
