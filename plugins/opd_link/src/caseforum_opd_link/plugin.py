"""Plugin entry point (group ``caseforum``): the One Portal Dossier as a dossier source.

Settings under ``plugins.opd_link`` (``CASEFORUM_PLUGINS__OPD_LINK__BASE_URL`` and so
on).  Without a ``base_url`` the plugin provides no source: there is no sensible
default service to call (the public USPTO one, or the reference server of
``caseforum-opd-reference`` for demos and tests).

Dossiers from the One Portal Dossier are public records of the office that made
them: their documents are stored with visibility ``public``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, HttpUrl

from caseforum import hookimpl
from caseforum.i18n import Catalogue, Msg
from caseforum.numbers import (
    KNOWN_OFFICES,
    NumberError,
    parse_application_number,
    parse_publication_number,
)
from caseforum.sources import (
    DossierSource,
    NumberMatch,
    SourceDocument,
    SourceDossier,
    SourceUnavailable,
)
from caseforum_opd_link import wire

LOCALE = Path(__file__).resolve().parent / "locale"
DOMAIN = "caseforum_opd_link"
MAX_DOCLISTS = 8  # document lists fetched for the other members of one family


class Config(BaseModel):
    """``[plugins.opd_link]`` in the settings file."""

    model_config = {"extra": "forbid"}

    base_url: HttpUrl | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=0.2, ge=0, le=10)
    metadata_ttl_seconds: int = Field(default=3600, ge=0, le=30 * 24 * 3600)


class OpdSource:
    """The dossier source speaking the Global Dossier paths (see ``client.py``)."""

    name = "opd_link"
    label = Msg("One Portal Dossier")  # the service's name, in the reader's language

    def __init__(self, config: dict[str, Any]) -> None:
        # httpx is imported only when a base URL is set (cold start: most instances
        # have no One Portal Dossier link)
        from caseforum_opd_link.client import OpdClient

        settings = Config.model_validate(config)
        self.client = OpdClient(str(settings.base_url), timeout=settings.timeout_seconds,
                                retries=settings.retries, backoff=settings.backoff_seconds)
        self.ttl_seconds = settings.metadata_ttl_seconds
        # a family and a few document lists, each with its retries: the host's deadline
        per_call = settings.timeout_seconds * (settings.retries + 1)
        self.timeout_seconds = min(300.0, per_call * 4)

    # The contract ---------------------------------------------------------------------

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        known = KNOWN_OFFICES | ({office.upper()} if office else set())
        asks: list[tuple[str, str, str, str]] = []  # kind, office, number, display
        try:
            app = parse_application_number(number, office=office, known_offices=known)
            if app.kind != "pct":  # the service files PCT members under their own office
                asks.append(("application", app.office, app.number, app.display))
        except NumberError:
            pass
        try:
            pub = parse_publication_number(number, office=office, known_offices=known)
            asks.append(("publication", pub.office, pub.number, pub.display))
        except NumberError:
            pass
        for kind, cc, digits, _display in asks:
            answer = self.client.family(kind, cc, digits)
            if answer is None:
                continue
            found = self._matches(answer, kind, cc, digits)
            if found:
                return found
        return []

    def fetch_dossier(self, ref: str) -> SourceDossier | None:
        kind, cc, digits = ref.split("/", 2)
        answer = self.client.family(kind, cc, digits, reuse=True)
        if answer is None:
            return None
        asked = self._asked(answer, kind, cc, digits)
        if asked is None:
            return None
        items = []
        doclists = 0
        for item in wire.members(answer):
            docs: tuple[SourceDocument, ...] | None = None
            office = wire.text(item.get("countryCode")).upper()
            filed = wire.when(item.get("appDate"), item.get("appDateStr"))
            if item is asked and isinstance(item.get("docList"), dict):
                docs = wire.documents(item["docList"], office, filed)
            if docs is None and item.get("ip5") is True and (
                    item is asked or doclists < MAX_DOCLISTS):
                doclists += item is not asked
                try:
                    listing = self.client.doclist(office, wire.text(item.get("appNum")),
                                                  wire.text(item.get("kindCode")) or "A")
                except SourceUnavailable:  # the client's OpdUnavailable
                    if item is asked:
                        raise
                    listing = None  # another member's list: the family still arrives
                docs = wire.documents(listing, office, filed)
            items.append((item, docs))
        return wire.dossier(ref, wire.text(asked.get("countryCode")).upper(),
                            wire.text(asked.get("appNum")), items)

    def stream_document(self, ref: str) -> Iterator[bytes]:
        return self.client.document(ref)

    # Reading a family answer -----------------------------------------------------------

    def _asked(self, answer: dict[str, Any], kind: str, cc: str,
               digits: str) -> dict[str, Any] | None:
        """The member the family was asked for: by application number, or the member
        that has the publication (else the one the service names in ``corrAppNum``)."""
        members = wire.members(answer)
        for item in members:
            if wire.text(item.get("countryCode")).upper() != cc:
                continue
            if kind == "application" and _digits(item.get("appNum")) == _digits(digits):
                return item
            if kind == "publication" and any(
                    _digits(p.get("pubNum")) == _digits(digits)
                    for p in item.get("pubList") or [] if isinstance(p, dict)):
                return item
        corr = _digits(answer.get("corrAppNum"))
        return next((m for m in members if _digits(m.get("appNum")) == corr
                     and wire.text(m.get("countryCode")).upper() == cc), None)

    def _matches(self, answer: dict[str, Any], kind: str, cc: str,
                 digits: str) -> list[NumberMatch]:
        item = self._asked(answer, kind, cc, digits)
        if item is None:
            return []
        office = wire.text(item.get("countryCode")).upper()
        number = wire.text(item.get("appNum"))
        try:
            display = parse_application_number(number, office=office,
                                               known_offices=KNOWN_OFFICES | {office}).display
        except NumberError:
            display = number
        return [NumberMatch(office, number, display, kind, f"{kind}/{cc}/{digits}")]


def _digits(value: Any) -> str:
    return "".join(ch for ch in wire.text(value) if ch.isalnum()).upper()


@hookimpl
def register_dossier_sources(config: dict[str, Any]) -> list[DossierSource]:
    if not config.get("base_url"):
        return []  # not configured: nothing to ask
    return [OpdSource(config)]


@hookimpl
def register_translations() -> list[Catalogue]:
    """The plugin's own catalogues (``locale/<language>/LC_MESSAGES``)."""
    return [Catalogue(LOCALE, DOMAIN)]
