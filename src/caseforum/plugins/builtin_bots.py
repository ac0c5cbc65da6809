"""The built-in bots (dossier, citations, new-content) as a plugin, so that an
administrator can switch them off like any other."""

from __future__ import annotations

from typing import Any

from caseforum import hookimpl
from caseforum.bots.builtin import BUILTIN_BOTS


@hookimpl
def register_bots() -> list[Any]:
    return [bot() for bot in BUILTIN_BOTS]
