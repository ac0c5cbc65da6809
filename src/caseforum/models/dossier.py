"""Dossiers: applications, families, documents, citations, access log."""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class Visibility(StrEnum):
    public = "public"  # anyone, anonymous visitors too where the office allows public access
    offices = "offices"  # every participating accessing office
    restricted = "restricted"  # the named offices only


class Family(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)


class Application(SQLModel, table=True):
    """One dossier: a published application of a providing office."""

    __table_args__ = (UniqueConstraint("office_code", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    office_code: str = Field(foreign_key="office.code", index=True, max_length=2)
    number: str = Field(index=True, max_length=40)  # normalised, e.g. 16123456
    display_number: str = Field(max_length=60)  # as the office writes it
    kind: str = "national"  # national | pct
    filing_date: date
    publication_number: str = Field(index=True, max_length=40)  # normalised, with office code
    publication_display: str = ""
    publication_date: date
    title: str
    applicants: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ipc: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cpc: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pct_number: str | None = Field(default=None, index=True, max_length=40)
    family_id: int | None = Field(default=None, foreign_key="family.id", index=True)
    source: str = "hosted"
    source_ref: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return f"{self.office_code}/{self.number}"


class Priority(SQLModel, table=True):
    """A priority claim: the earlier application this one claims."""

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    office_code: str = Field(max_length=2)
    number: str = Field(max_length=40)
    display_number: str = ""
    date: date

    __table_args__ = (Index("ix_priority_office_number", "office_code", "number"),)


class Document(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    code: str = Field(index=True, max_length=20)  # as the office wrote it: CTNF, A131-JP
    date: date
    language: str = Field(default="en", max_length=8)
    is_translation: bool = False
    media_type: str
    size: int
    sha256: str = Field(index=True, max_length=64)
    filename: str
    pages: int | None = None
    visibility: Visibility = Visibility.offices
    text_content: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    #: the office's own label, when a source or an upload gave one (else the code tables');
    #: last, where migration 0005 added it, so a new database matches a migrated one
    label: str = Field(default="", max_length=300, sa_column_kwargs={"server_default": ""})
    #: a translation: the id of the original it translates, a document of the same dossier
    #: (migration 0010; no foreign key, see there: ``service.check_original`` keeps it
    #: sound). An original and its translations are shown side by side; ``language`` tells
    #: them apart. ``is_translation`` alone: a translation whose original is not held here.
    translation_of: int | None = Field(default=None, index=True)


class DocumentOffice(SQLModel, table=True):
    """The named offices of a ``restricted`` document."""

    __tablename__ = "document_office"

    document_id: int = Field(foreign_key="document.id", primary_key=True)
    office_code: str = Field(foreign_key="office.code", primary_key=True, max_length=2)


class Citation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    document_id: int | None = Field(default=None, foreign_key="document.id", index=True)
    cited: str  # as given: a publication number or non-patent literature
    cited_number: str | None = Field(default=None, index=True, max_length=40)
    category: str = Field(max_length=16)  # ST.14, e.g. "X" or "X,Y"
    claims: str = ""
    phase: str = ""
    citing_office: str = Field(max_length=2)
    created_at: datetime = Field(default_factory=utcnow)


class AccessLog(SQLModel, table=True):
    """Who viewed, downloaded, printed or compared which document."""

    __tablename__ = "access_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = None
    office_code: str | None = Field(default=None, max_length=2, index=True)  # the viewer's
    document_id: int = Field(index=True)
    application_id: int
    providing_office: str = Field(max_length=2, index=True)
    action: str = Field(max_length=16)  # view | download | print | compare


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a request sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int
    key: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ImportRecord(SQLModel, table=True):
    """A bulk package that landed, by content hash: the same package twice changes nothing."""

    __tablename__ = "import_record"

    sha256: str = Field(primary_key=True, max_length=64)
    office_code: str = Field(max_length=2)
    user_id: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
