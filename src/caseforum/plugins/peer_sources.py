"""Another CaseForum instance as a dossier source: an office's dossiers served live.

A providing office that runs its own CaseForum (or any system answering the same
API) need not upload its dossiers here: ``caseforum sources add --office KR --url URL
--token-file F`` records that KR's dossiers are read from that instance, through its
API, with a token of a KR account there.  The providing side applies its own
visibility choices (a document KR restricted to JP arrives marked so, with its
offices) and this instance applies them again to its own viewers, with the same
caching and health as every source.

The list lives in ``dossier_sources.json`` in the data folder (the token stays in
its own file, read when the plugins load); a change takes effect at the next start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from caseforum import hookimpl
from caseforum.sources import (
    DossierSource,
    NumberMatch,
    SourceApplication,
    SourceDocument,
    SourceDossier,
    SourcePriority,
    SourcePublication,
    SourceUnavailable,
)

REGISTRY = "dossier_sources.json"
_OFFICE = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True)
class Peer:
    office: str
    url: str
    token_file: str


def read_peers(data_dir: Path | None) -> list[Peer]:
    path = (data_dir or Path(".")) / REGISTRY
    if data_dir is None or not path.is_file():
        return []
    raw = json.loads(path.read_text())
    return [Peer(p["office"], p["url"], p["token_file"]) for p in raw.get("sources", [])]


def write_peers(data_dir: Path, peers: list[Peer]) -> Path:
    path = data_dir / REGISTRY
    path.write_text(json.dumps({"sources": [p.__dict__ for p in peers]}, indent=2) + "\n")
    return path


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


class PeerSource:
    """One office's dossiers, read from another instance's API (``/api/v1``)."""

    timeout_seconds = 30.0

    def __init__(self, office: str, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.office = office
        self.name = f"peer_{office.lower()}"
        self.label = f"{office} dossiers at {urlsplit(url).netloc or url}"
        import httpx  # only for an instance that has peers (cold start)

        self._http = httpx.Client(
            base_url=url.rstrip("/"), follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     # answer from what you hold: never ask your own sources for us
                     "X-CaseForum-Peer": "1"},
            transport=httpx.HTTPTransport(retries=1))  # a refused connection, once more

    def _get(self, path: str, **params: Any) -> dict[str, Any] | None:
        response = self._http.get(path, params=params or None)
        if response.status_code in (404, 422):
            return None  # not a dossier (or a number) the other instance knows
        if response.status_code in (401, 403):
            raise SourceUnavailable(f"{self.label} refused the token (HTTP "
                                    f"{response.status_code}): give a token of a "
                                    f"{self.office} account with the dossiers:read scope")
        if response.status_code != 200:
            raise SourceUnavailable(f"{self.label}: HTTP {response.status_code}")
        value = response.json()
        if not isinstance(value, dict):
            raise SourceUnavailable(f"{self.label}: expected a JSON object")
        return value

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        if office not in (None, self.office):
            return []
        answer = self._get("/api/v1/lookup", number=number, office=self.office)
        return [NumberMatch(m["office"], m["application_number"], m["display_number"],
                            m["matched_as"], f"{m['office']}/{m['application_number']}")
                for m in (answer or {}).get("matches", [])
                if m.get("office") == self.office and m.get("source") == "hosted"]

    def fetch_dossier(self, ref: str) -> SourceDossier | None:
        office, number = ref.split("/", 1)
        body = self._get(f"/api/v1/dossiers/{quote(office)}/{quote(number, safe='')}")
        if body is None or body.get("office") != self.office:
            return None
        pub = body.get("publication_number") or ""
        docs = tuple(SourceDocument(
            ref=str(d["id"]), code=d["code"], label=d.get("label") or d["code"],
            date=_date(d.get("date")) or date.min, language=d.get("language") or "en",
            is_translation=bool(d.get("is_translation")),
            original_ref=str(d["translation_of"]) if d.get("translation_of") else None,
            media_type=d.get("media_type") or "application/octet-stream",
            pages=d.get("pages"), visibility=d.get("visibility") or "offices",
            offices=tuple(d.get("offices") or ())) for d in body.get("documents", []))
        member = SourceApplication(
            office=office, number=body["application_number"],
            display_number=body.get("display_number") or number,
            filing_date=_date(body.get("filing_date")), title=body.get("title") or "",
            applicants=tuple(body.get("applicants") or ()),
            publications=(SourcePublication(pub[2:] if pub[:2] == office else pub, "",
                                            _date(body.get("publication_date"))),) if pub
            else (),
            priorities=tuple(SourcePriority(p["office"], p["number"])
                             for p in body.get("priorities") or []),
            documents=docs)
        return SourceDossier(ref, office, body["application_number"], (member,))

    def stream_document(self, ref: str) -> Iterator[bytes]:
        with self._http.stream("GET", f"/api/v1/documents/{quote(ref)}/content") as response:
            if response.status_code != 200:
                raise SourceUnavailable(f"{self.label}: document {ref}: HTTP "
                                        f"{response.status_code}")
            yield from response.iter_bytes()


@hookimpl
def register_dossier_sources(data_dir: Path | None) -> list[DossierSource]:
    sources: list[DossierSource] = []
    for peer in read_peers(data_dir):
        token = Path(peer.token_file).read_text().strip()
        sources.append(PeerSource(peer.office, peer.url, token))
    return sources


@hookimpl
def register_commands(cli: Any) -> None:
    import click

    from caseforum.cli import pass_ctx

    @cli.group("sources")
    def sources() -> None:
        """Dossier sources: other CaseForum instances serving an office's dossiers."""

    @sources.command("add")
    @click.option("--office", required=True, help="the providing office, e.g. KR")
    @click.option("--url", required=True, help="the other instance, e.g. https://cf.kipo.example")
    @click.option("--token-file", required=True,
                  type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="a file holding an API token of that office there (dossiers:read)")
    @pass_ctx
    def add(ctx: Any, office: str, url: str, token_file: Path) -> None:
        """Read OFFICE's dossiers live from another instance (at the next start)."""
        office = office.strip().upper()
        if not _OFFICE.fullmatch(office):
            raise click.ClickException(f"office {office!r}: give a two-letter code such as KR")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise click.ClickException(f"url {url!r}: give http(s)://host[:port]")
        if not token_file.read_text().strip():
            raise click.ClickException(f"{token_file} is empty: put the API token in it")
        peers = [p for p in read_peers(ctx.settings.data_dir) if p.office != office]
        peers.append(Peer(office, url.rstrip("/"), str(token_file.resolve())))
        path = write_peers(ctx.settings.data_dir, peers)
        click.echo(f"{office} dossiers will be read from {url} (source peer_{office.lower()}; "
                   f"saved in {path}; restart the server to use it)")

    @sources.command("list")
    @pass_ctx
    def list_(ctx: Any) -> None:
        """The configured sources and whether they load."""
        for health in ctx.host.source_health():
            click.echo(f"{health.name:<16} {health.plugin:<18} "
                       f"{'ok' if not health.problem else health.problem}")
