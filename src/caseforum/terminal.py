"""The command line's language: what the terminal's locale asks for.

``LC_ALL``, else ``LC_MESSAGES``, else ``LANG`` (the order POSIX gives them), when it
names a language: ``ja_JP.UTF-8`` gets Japanese, ``en_GB.UTF-8`` or ``fr_FR.UTF-8``
English (there is no French catalogue).  A terminal that names none (unset, ``C``,
``POSIX``: a service's environment) gets the instance default, ``default_locale``.
Commands print messages (:class:`caseforum.i18n.Msg`) through :func:`say`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from caseforum import i18n

_NEUTRAL = ("", "C", "POSIX")


def terminal_language(default: str = i18n.DEFAULT_LANGUAGE,
                      environ: Mapping[str, str] | None = None) -> str:
    """The language for a terminal whose environment is ``environ`` (the process's)."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            tag = value.split(".")[0].split("@")[0]
            if tag in _NEUTRAL:
                break
            return i18n.match_language([tag]) or i18n.SOURCE_LANGUAGE
    return default if default in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


def say(message: object, default: str = i18n.DEFAULT_LANGUAGE) -> str:
    """``message`` (a :class:`~caseforum.i18n.Msg`, an ``N_`` string, an error's text)
    in the terminal's language."""
    return i18n.translate(message, i18n.PageLocale.of(terminal_language(default)))
