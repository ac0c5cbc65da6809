"""The hosted repository: dossiers that providing offices upload to this instance.

It answers number look-ups from the database and serves document files from the
content-addressed store.  Other sources (a One Portal Dossier link, say) plug in
through the same hook and are asked when this one has no answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from caseforum import hookimpl
from caseforum.dossiers.access import Access
from caseforum.dossiers.lookup import find_dossiers
from caseforum.models import Application, Document
from caseforum.storage import FileStore


class HostedRepository:
    name = "hosted"
    label = "Hosted repository"

    def lookup(self, number: str, *, session: Any, access: Access,
               office: str | None = None) -> list[Application]:
        """Dossiers matching a loosely typed number that the viewer may see."""
        return find_dossiers(session, access, number, office=office)

    def fetch_document(self, ref: Document, *, store: FileStore) -> Iterator[bytes]:
        """The file of a hosted document, streamed in chunks."""
        return store.iter_bytes(ref.sha256)


@hookimpl
def register_dossier_sources() -> list[Any]:
    return [HostedRepository()]
