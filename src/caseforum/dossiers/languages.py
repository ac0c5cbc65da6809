"""Document languages: the tags documents carry and the names pages show for them.

A document's ``language`` is a short BCP-47 tag: an ISO 639 language (``en``, ``ja``,
``zh``, ``ko``), optionally with a script (``zh-Hant``) or a region (``pt-BR``).  It is
what tells an original from its translation in a pair, so every listing shows it.
"""

from __future__ import annotations

import re

from caseforum.i18n import N_

#: a tag as dossiers need it; 8 characters at most (the column)
LANGUAGE_RE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}))?$", re.IGNORECASE)
MAX_LANGUAGE = 8

#: the languages dossiers of the participating offices come in (ISO 639-1), English
#: names marked for the pages to translate
LANGUAGE_NAMES = {"en": N_("English"), "ja": N_("Japanese"), "zh": N_("Chinese"),
                  "ko": N_("Korean"), "de": N_("German"), "fr": N_("French"),
                  "es": N_("Spanish"), "ru": N_("Russian"), "pt": N_("Portuguese")}


def normalise_language(given: str) -> str | None:
    """``JA`` -> ``ja``, ``zh-hant`` -> ``zh-Hant``, ``pt-br`` -> ``pt-BR``; ``None``
    for anything that is not such a tag."""
    given = given.strip()
    match = LANGUAGE_RE.match(given)
    if match is None or len(given) > MAX_LANGUAGE:
        return None
    lang, script, region = match.groups()
    return "-".join(part for part in (lang.lower(), script and script.title(),
                                      region and region.upper()) if part)


def language_name(code: str) -> str:
    """``ja`` -> ``Japanese`` (``zh-Hant``: the name of ``zh``); a language not listed
    is shown as its tag.  English: a page translates it with ``| tr``."""
    return LANGUAGE_NAMES.get(code.split("-", 1)[0].lower(), code)
