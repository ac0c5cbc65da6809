"""Interface languages and time zones: which catalogue and which zone a page uses.

The web layer chooses a :class:`PageLocale` per request (``caseforum.web.locale``) and
makes it current only while that request's page renders (:func:`using`).  Anything
rendered outside a page with no locale of its own sees none and falls back to the
instance default given to the template environment (:func:`default_locale`): the
language of whoever caused an event never leaks into what everybody else receives.

The live fragments the hub renders once for many viewers (``forum/live.py``) carry
their readers' own: the hub renders each once per language among its watchers
(:func:`for_language` picks the templates compiled for it) with a locale whose zone is
:data:`ZONE_LATER`, which writes times as placeholders; each zone's copy then only
fills them in (:func:`fill_times`), so seven offices in seven zones still share one
render per language.

Domain code does not translate.  It marks what a user may read: :func:`N_` for a fixed
message, :class:`Msg` for one with values, :class:`NMsg` for one that counts and
:class:`CMsg` for a word that needs its context to be translated; all
stay English strings (API answers, logs, the command line) and are translated when a
page shows them (:func:`translate`).  ``make i18n`` extracts the markers (``babel.cfg``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Babel is imported where it is first needed: loading it is a tenth of a second that
# every command and every start-up would otherwise pay for English alone
log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@dataclass(frozen=True)
class Language:
    """An interface language: its BCP 47 tag (``<html lang>``, the stored preference),
    the folder of its catalogue, and its name as its readers write it."""

    code: str
    catalogue: str
    name: str


#: The interface languages, in the order the switcher lists them.
LANGUAGES: dict[str, Language] = {lang.code: lang for lang in (
    Language("en", "en", "English"),
    Language("zh-Hans", "zh_Hans", "简体中文"),
    Language("ja", "ja", "日本語"),
    Language("ko", "ko", "한국어"),
)}
DEFAULT_LANGUAGE = "en"
SOURCE_LANGUAGE = "en"  # the msgids are English: no catalogue needed
#: tags of Traditional Chinese, which the Simplified catalogue must not answer for
_TRADITIONAL = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")
_PRIMARY = {code.split("-")[0]: code for code in LANGUAGES}


def N_(message: str) -> str:
    """Mark a fixed message for the catalogue; it is translated where it is shown."""
    return message


#: messages users see that come from code which does not mark them (Starlette's own
#: answers, the application's last-resort ones): named here so the catalogue has them
UNMARKED_MESSAGES = (
    N_("Not Found"),
    N_("Method Not Allowed"),
    N_("Something went wrong on our side; the error has been logged."),
)


class Msg(str):
    """A message with values: the English text to everyone who reads a string (API,
    logs), and its catalogue id and values to a page that translates it."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Msg:
        self = super().__new__(cls, msgid % params if params else msgid)
        self.msgid = msgid
        self.params = params
        return self


class NMsg(Msg):
    """A :class:`Msg` that counts something: singular and plural English forms, and
    ``num``, the count, which picks the form in every language."""

    plural: str

    def __new__(cls, singular: str, plural: str, num: int, **params: Any) -> NMsg:
        params["num"] = num
        self = str.__new__(cls, (singular if num == 1 else plural) % params)
        self.msgid, self.plural, self.params = singular, plural, params
        return self


class CMsg(Msg):
    """A fixed message whose English word means more than one thing (the "Search"
    group of documents, the "Search" page): ``context`` tells them apart in the
    catalogue (``msgctxt``)."""

    context: str

    def __new__(cls, context: str, message: str) -> CMsg:
        self = str.__new__(cls, message)
        self.context, self.msgid, self.params = context, message, {}
        return self


def match_language(tags: Iterable[str]) -> str | None:
    """The first of ``tags`` (BCP 47, most wanted first) we have a catalogue for, as
    one of our codes; ``None`` when there is none.  ``zh``, ``zh-CN`` and ``zh-Hans-SG``
    get Simplified Chinese, Traditional Chinese tags nothing."""
    tags = list(tags)
    if tags and tags[0] in LANGUAGES:  # the usual case, a stored preference: as it is
        return tags[0]
    from babel.core import negotiate_locale

    wanted = [t.strip().replace("_", "-") for t in tags if t and t.strip()]
    wanted = [t for t in wanted if not t.lower().startswith(_TRADITIONAL)]
    found = negotiate_locale(wanted, list(_PRIMARY), sep="-", aliases=None)
    if found is None:
        return None
    return _PRIMARY.get(found.split("-")[0].lower())


def accept_language(header: str | None, *, limit: int = 20) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (``q=0`` dropped,
    the order kept among equals); at most ``limit`` of them, whatever the header says."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")[:limit]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


@cache
def translations(code: str) -> NullTranslations:
    """The compiled catalogue of a language, loaded once per process.  English (the
    language of the msgids) needs none; a missing ``.mo`` is logged and shows English."""
    language = LANGUAGES[code]
    if code == SOURCE_LANGUAGE:
        return NullTranslations()
    from babel.support import Translations

    found = Translations.load(LOCALE_DIR, [language.catalogue], domain="messages")
    if not isinstance(found, Translations):
        log.warning("no compiled catalogue for %s in %s: run 'make setup'", code, LOCALE_DIR)
    return found


# Time zones ---------------------------------------------------------------------------

UTC_ZONE = "UTC"
#: the zones the settings page offers besides the offices' own (any IANA name is
#: accepted by the form; these are the ones most readers need)
COMMON_ZONES = (
    "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Zurich",
    "Europe/Moscow", "Asia/Dubai", "Asia/Kolkata", "Asia/Bangkok", "Asia/Singapore",
    "Asia/Hong_Kong", "Asia/Taipei", "Asia/Shanghai", "Asia/Seoul", "Asia/Tokyo",
    "Australia/Perth", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
)


@cache
def zone(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or ``None`` when there is no such zone."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_label(moment: datetime) -> str:
    """The abbreviation of an aware ``moment``'s zone: JST, KST, CET; numeric zones
    (``+08``, as the zone database writes Singapore's) as UTC+08."""
    name = moment.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" and name else name


#: the zone of a render shared by readers in several zones: times are written as
#: placeholders (a private-use character, a per-process nonce, the kind and the Unix
#: time), which :func:`fill_times` turns into each reader's time.  An object of its
#: own (``no_cache``), told apart by identity.
ZONE_LATER = ZoneInfo.no_cache("UTC")
_MARK = f"\ue000{secrets.token_hex(4)}"
_PLACEHOLDER = re.compile(re.escape(_MARK) + r"([td])(-?\d+)\ue001")


def _later(kind: str, moment: datetime) -> str:
    return f"{_MARK}{kind}{int(moment.timestamp())}\ue001"


def fill_times(html: str, where: ZoneInfo | None) -> str:
    """``html`` rendered with :data:`ZONE_LATER`, with its times in the zone ``where``."""
    if _MARK not in html:
        return html

    def fill(found: re.Match[str]) -> str:
        moment = datetime.fromtimestamp(int(found.group(2)), UTC)
        if found.group(1) == "t":
            return local_time(moment, where)
        return local_date(moment, where)

    return _PLACEHOLDER.sub(fill, html)


def local_time(moment: datetime, where: ZoneInfo | None) -> str:
    """``2026-05-04 14:05 JST``: date and minutes in the reader's zone, with the zone.
    A naive ``moment`` is taken as UTC, as the database stores every time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if where is ZONE_LATER:
        return _later("t", moment)
    if where is not None:
        moment = moment.astimezone(where)
        return f"{moment:%Y-%m-%d %H:%M} {zone_label(moment)}"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def local_date(day: date | datetime, where: ZoneInfo | None) -> str:
    """``2026-05-04``: a calendar date as it is; the date of a moment in the reader's
    zone (a moment late on the 3rd in UTC is the 4th in Tokyo)."""
    if isinstance(day, datetime):
        if day.tzinfo is None:
            day = day.replace(tzinfo=UTC)
        if where is ZONE_LATER:
            return _later("d", day)
        day = day.astimezone(where or UTC)
    return f"{day:%Y-%m-%d}"


# The locale of the page being rendered ---------------------------------------------------


@dataclass(frozen=True)
class PageLocale:
    """Everything a render needs to speak the reader's language and zone."""

    language: Language
    translations: NullTranslations
    zone: ZoneInfo | None
    #: messages already translated by :func:`translate`: one shown on every post
    #: (a reaction's label) is looked up once
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def code(self) -> str:
        return self.language.code

    @classmethod
    def of(cls, code: str, zone_name: str = UTC_ZONE) -> PageLocale:
        return _page_locale(code if code in LANGUAGES else DEFAULT_LANGUAGE, zone_name)

    @classmethod
    def zone_later(cls, code: str) -> PageLocale:
        """The locale of a render shared by readers of ``code`` in any zone: times
        come out as placeholders (:data:`ZONE_LATER`, :func:`fill_times`)."""
        return _later_locale(code if code in LANGUAGES else DEFAULT_LANGUAGE)


@cache
def _page_locale(code: str, zone_name: str) -> PageLocale:
    return PageLocale(LANGUAGES[code], translations(code), zone(zone_name))


@cache
def _later_locale(code: str) -> PageLocale:
    return PageLocale(LANGUAGES[code], translations(code), ZONE_LATER)


# Template environments per language ----------------------------------------------------

#: what ``web/template_i18n.py`` keeps on a template environment (``Environment.extend``):
#: the environment of each language, and the locale of a render outside any page
ENVIRONMENTS = "caseforum_languages"
DEFAULT_LOCALE = "caseforum_default_locale"


def for_language(env: Any, code: str) -> Any:
    """The template environment whose templates are compiled for ``code`` (``env``
    itself for an unknown code, or an environment set up without languages)."""
    languages: dict[str, Any] = getattr(env, ENVIRONMENTS, {})
    return languages.get(code, env)


def default_locale(env: Any) -> PageLocale:
    """The locale a render outside any page gets: the instance default language and zone."""
    found: PageLocale | None = getattr(env, DEFAULT_LOCALE, None)
    return found or PageLocale.of(DEFAULT_LANGUAGE)


#: the most finished messages a locale keeps (far more than the catalogue has)
MEMO_LIMIT = 10_000

_current: ContextVar[PageLocale | None] = ContextVar("caseforum_page_locale", default=None)


#: the locale of the page rendering now, if any (the context variable's own ``get``:
#: asked for every message, so no Python function around it)
current = _current.get


@contextmanager
def using(locale: PageLocale) -> Iterator[PageLocale]:
    """Make ``locale`` current for what is rendered inside the block."""
    token = _current.set(locale)
    try:
        yield locale
    finally:
        _current.reset(token)


def translate(message: object, locale: PageLocale) -> str:
    """A message for the reader: a :class:`Msg` through its catalogue id, a plain
    string if the catalogue knows it (a message marked with :func:`N_`), else as is."""
    if isinstance(message, Msg):
        if isinstance(message, CMsg):
            return locale.translations.pgettext(message.context, message.msgid)
        if isinstance(message, NMsg):
            text = locale.translations.ngettext(message.msgid, message.plural,
                                                message.params["num"])
        else:
            text = locale.translations.gettext(message.msgid)
        try:
            return text % message.params if message.params else text
        except (KeyError, ValueError, TypeError):  # a broken translation: show English
            log.warning("catalogue %s: bad placeholders in %r", locale.code, text)
            return str(message)
    if isinstance(message, str):
        found: str | None = locale.memo.get(("tr", message))
        if found is None:
            found = locale.translations.gettext(message)
            if len(locale.memo) < MEMO_LIMIT:  # messages with values: not kept for ever
                locale.memo["tr", message] = found
        return found
    return "" if message is None else str(message)
