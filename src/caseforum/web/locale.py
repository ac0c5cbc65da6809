"""The reader's language and time zone, per request.

The language is the user's own choice (``User.locale``, set here or on the settings
page), else the one chosen with the switcher (a cookie: it works for visitors who are
not logged in, and after a log-out), else the first of the browser's
``Accept-Language`` we have a catalogue for, else the instance default
(``default_locale``).

Times are shown in the user's own zone, else their office's, else the instance
default (``default_time_zone``; visitors who are not logged in get that one).  Machine
outputs (API, CSV, feeds) do not come here: they stay UTC.
"""

from __future__ import annotations

from functools import cache

from starlette.requests import HTTPConnection

from caseforum import i18n

LANG_COOKIE = "cf_lang"


@cache
def _known(tag: str) -> str | None:
    """One stored or sent tag as one of our languages (asked on every page: cached)."""
    return i18n.match_language([tag])


def chosen_language(conn: HTTPConnection) -> str:
    return language_for(conn, getattr(getattr(conn.state, "user", None), "locale", ""))


def language_for(conn: HTTPConnection, preference: str) -> str:
    """The language of a user whose own choice is ``preference`` (empty: none), on
    this request or websocket handshake."""
    for wish in (preference, conn.cookies.get(LANG_COOKIE, "")[:35]):
        found = _known(wish) if wish else None
        if found:
            return found
    header = conn.headers.get("accept-language")
    found = i18n.match_language(i18n.accept_language(header)) if header else None
    return found or conn.app.state.settings.default_locale


def chosen_zone(conn: HTTPConnection) -> str:
    user = getattr(conn.state, "user", None)
    office = getattr(conn.state, "office", None)
    return zone_for(conn, getattr(user, "time_zone", ""), getattr(office, "time_zone", ""))


def zone_for(conn: HTTPConnection, *preferences: str) -> str:
    """The first zone of ``preferences`` that exists (the user's, the office's), else
    the instance default."""
    for name in preferences:
        if name and i18n.zone(name) is not None:
            return name
    return conn.app.state.settings.default_time_zone


def request_locale(conn: HTTPConnection) -> i18n.PageLocale:
    """The locale pages of this request are rendered in (worked out once)."""
    state = conn.state
    found: i18n.PageLocale | None = getattr(state, "page_locale", None)
    if found is None:
        found = state.page_locale = i18n.PageLocale.of(chosen_language(conn), chosen_zone(conn))
    return found
