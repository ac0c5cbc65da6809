"""What the host keeps about dossiers and documents that came from a remote source.

The dossier itself is an ordinary ``Application`` (with ``source`` naming the
source and ``source_ref`` its handle) and each document an ordinary ``Document``;
these tables add what only a remote copy has: when it was fetched, since when it
could not be refreshed, the publications with their kind codes, and for each
document the source's own reference, label and sharing flag.  A remote document's
bytes are fetched on first view: until then its ``sha256`` is empty.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class RemoteDossier(SQLModel, table=True):
    __tablename__ = "remote_dossier"

    application_id: int = Field(foreign_key="application.id", primary_key=True)
    source: str = Field(max_length=40, index=True)
    kind_code: str = Field(default="", max_length=8)
    publications: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False))
    documents_listed: bool = False  # False: the source could not list the documents
    fetched_at: datetime = Field(default_factory=utcnow)
    stale_since: datetime | None = None  # set while refreshing fails; None when fresh


class RemoteDocument(SQLModel, table=True):
    __tablename__ = "remote_document"

    document_id: int = Field(foreign_key="document.id", primary_key=True)
    source: str = Field(max_length=40)
    ref: str = Field(max_length=500)
    label: str = Field(default="", max_length=500)
    shareable: bool | None = None
    original_ref: str | None = Field(default=None, max_length=500)
