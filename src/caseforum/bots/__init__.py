"""The bot platform: bots answer posts (and dossier events) with posts of their own.

Plugins write bots with the names exported here and return them from the
``register_bots`` hook; :class:`caseforum.bots.runner.BotRunner` runs them.
See docs/bots.md.
"""

from caseforum.bots.base import (
    Bot,
    BotAnswer,
    BotError,
    BotEvent,
    BotPost,
    BotReference,
    BotThread,
    Invocation,
    Triggers,
    citations_embed,
    document_embed,
    dossier_embed,
)
from caseforum.bots.context import BotContext

__all__ = [
    "Bot",
    "BotAnswer",
    "BotContext",
    "BotError",
    "BotEvent",
    "BotPost",
    "BotReference",
    "BotThread",
    "Invocation",
    "Triggers",
    "citations_embed",
    "document_embed",
    "dossier_embed",
]
