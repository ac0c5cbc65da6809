"""The hosted repository: dossiers that providing offices upload to this instance.

Its dossiers live in this database and its files in the file store, which the
host reads before it asks any source (``caseforum.dossiers.remote``), so as a
source it has nothing left to answer: it is listed (``local = True``) so that the
admin page shows it and every stored dossier has a source.  Remote sources (a One
Portal Dossier link, another CaseForum instance) answer the same contract for the
numbers not held here.
"""

from __future__ import annotations

from collections.abc import Iterable

from caseforum import hookimpl
from caseforum.i18n import Msg
from caseforum.sources import DossierSource, NumberMatch, SourceDossier


class HostedRepository:
    name = "hosted"
    label = Msg("Hosted repository")
    local = True  # its dossiers are this database: the host searches it first

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        return []  # whatever it holds, the host has found already

    def fetch_dossier(self, ref: str) -> SourceDossier | None:
        return None

    def stream_document(self, ref: str) -> Iterable[bytes]:
        raise LookupError("hosted documents are read from the file store")


@hookimpl
def register_dossier_sources() -> list[DossierSource]:
    return [HostedRepository()]
