"""The texts of notifications, and finding them again to show them translated.

A notification keeps the English text it was made with: the API, the Atom feeds and
webhooks give it as it is.  The notifier makes every text from one of the messages
here; a page or an e-mail in another language finds out which one a stored text
is, with its values (:func:`as_message`), and shows it from the catalogue.  A text
no message here makes (a bot's error note, one cut at 500 characters) is shown as
it was stored.
"""

from __future__ import annotations

import re
from functools import cache

from caseforum.i18n import N_, Msg

WROTE = N_("%(who)s wrote in “%(title)s”")
REPLIED = N_("%(who)s replied to you in “%(title)s”")
MENTIONED = N_("%(who)s mentioned you in “%(title)s”")
NEW_DOCUMENT = N_("New %(code)s in %(office)s %(number)s")
ICE_REFUSED = N_("ICE: a parcel was refused (%(code)s)")
#: a step of an exchange, by the status it led to (another status: :data:`ICE_OTHER`)
ICE_STEPS = {
    "requested": N_("ICE: exchange %(exchange)s requested by %(office)s"),
    "accepted": N_("ICE: exchange %(exchange)s accepted by %(office)s"),
    "declined": N_("ICE: exchange %(exchange)s declined by %(office)s"),
    "in_progress": N_("ICE: work on exchange %(exchange)s started by %(office)s"),
    "report_delivered": N_("ICE: report of exchange %(exchange)s delivered by %(office)s"),
    "acknowledged": N_("ICE: exchange %(exchange)s acknowledged by %(office)s"),
    "closed": N_("ICE: exchange %(exchange)s closed by %(office)s"),
}
ICE_OTHER = "ICE: exchange %(exchange)s %(status)s by %(office)s"  # not translated
#: the texts :func:`as_message` recognises, most specific first
MESSAGES = (REPLIED, MENTIONED, WROTE, NEW_DOCUMENT, ICE_REFUSED, *ICE_STEPS.values())
_VALUE = re.compile(r"%\((\w+)\)s")


def ice_step(status: str, *, exchange: str, office: str) -> Msg:
    """The text of an exchange's step that led to ``status``."""
    found = ICE_STEPS.get(status)
    if found is None:
        return Msg(ICE_OTHER, exchange=exchange, status=status, office=office)
    return Msg(found, exchange=exchange, office=office)


@cache
def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for message in MESSAGES:
        parts = _VALUE.split(message)  # text, name, text, name, ..., text
        source = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+)"
                         for index, part in enumerate(parts))
        out.append((message, re.compile(source, re.S)))
    return out


def as_message(text: str) -> str:
    """A stored notification text as the :class:`Msg` it was made from (translated
    where it is shown), or the text itself."""
    for message, pattern in _patterns():
        found = pattern.fullmatch(text)
        if found:
            return Msg(message, **found.groupdict())
    return text
