"""What providing offices send, and what the API answers: one set of field names.

Validation turns loose input into clean values (normalised numbers, checked
codes and dates) or raises :class:`DossierError` naming the field to fix.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from caseforum import errors
from caseforum.doccodes import split_categories


class DossierError(errors.InvalidInput):
    """Input a providing office must correct; ``field`` names where."""

    def __init__(self, message: str, field: str = "", **kwargs: Any) -> None:
        super().__init__(f"{field}: {message}" if field else message, **kwargs)
        self.field = field


class PriorityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    office: str = Field(min_length=2, max_length=2, examples=["JP"])
    number: str = Field(min_length=1, max_length=60, examples=["2017-187096"])
    date: date


class DossierIn(BaseModel):
    """Bibliographic data of one published application."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{
                "office": "US", "application_number": "16/123,456",
                "filing_date": "2018-09-28", "publication_number": "US 2019/0094321 A1",
                "publication_date": "2019-03-28",
                "title": "Heat exchanger with layered fins",
                "applicants": ["Example Industries Ltd."], "ipc": ["F28F 1/32"],
                "priorities": [{"office": "JP", "number": "2017-187096",
                                "date": "2017-09-28"}],
                "pct_application_number": None,
            }]
        },
    )

    office: str = Field(min_length=2, max_length=2)
    application_number: str = Field(min_length=1, max_length=60)
    filing_date: date
    publication_number: str | None = Field(default=None, max_length=60)
    publication_date: date | None = None
    title: str = Field(min_length=1, max_length=2000)
    applicants: list[str] = Field(default_factory=list, max_length=100)
    ipc: list[str] = Field(default_factory=list, max_length=200)
    cpc: list[str] = Field(default_factory=list, max_length=500)
    priorities: list[PriorityIn] = Field(default_factory=list, max_length=100)
    pct_application_number: str | None = Field(default=None, max_length=60)

    @field_validator("office")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class CitationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{
            "cited": "WO 2016/123456 A1", "category": "X", "claims": "1-5",
            "phase": "search", "document_id": 12}]},
    )

    cited: str = Field(min_length=1, max_length=2000)
    category: str = Field(min_length=1, max_length=16)
    claims: str = Field(default="", max_length=200)
    phase: str = Field(default="", max_length=40)
    #: a database id: within a PostgreSQL integer, so a huge number is a 422, not a 500
    document_id: int | None = Field(default=None, ge=1, le=2**31 - 1)

    @field_validator("category")
    @classmethod
    def _st14(cls, value: str) -> str:
        return ",".join(split_categories(value))


class DocumentOut(BaseModel):
    id: int
    code: str  # exactly as the office (or source) gave it
    label: str  # the office's own label, else the code tables' (caseforum.doccodes)
    group: str = "other"  # search | examination | grant | application | applicant | other
    direction: str | None = None  # incoming | outgoing | internal; None: not known
    date: date
    language: str = Field(description="BCP-47 tag: en, ja, zh, ko, zh-Hant ...")
    is_translation: bool
    translation_of: int | None = Field(default=None, description=(
        "a translation: the id of its original in the same dossier, when the caller may "
        "see it (else null, as for a translation whose original is not held here)"))
    translations: list[int] = Field(default_factory=list, description=(
        "an original: the ids of its translations that the caller may see"))
    visibility: str
    offices: list[str] = []  # restricted: the named offices, for readers who may know
    media_type: str
    size: int
    sha256: str
    pages: int | None = None
    filename: str


class CitationOut(BaseModel):
    id: int
    cited: str
    category: str
    claims: str
    phase: str
    document_id: int | None
    citing_office: str
    link: str | None = None


class FamilyMemberOut(BaseModel):
    office: str
    application_number: str
    display_number: str
    filing_date: date
    publication_number: str
    title: str


class DossierOut(BaseModel):
    office: str
    application_number: str
    display_number: str
    kind: str
    filing_date: date
    publication_number: str
    publication_date: date
    title: str
    applicants: list[str]
    ipc: list[str]
    cpc: list[str]
    priorities: list[dict[str, Any]]
    pct_application_number: str | None
    source: str = Field(description="where the dossier comes from: hosted (uploaded here) "
                        "or the name of a dossier source such as opd_link")
    stale_since: datetime | None = Field(
        default=None, description="set when the dossier came from a remote source that "
        "could not be asked again since then (the copy held here is shown); null when fresh")
    publications: list[dict[str, Any]] | None = Field(
        default=None, description="a dossier from a remote source: every publication as "
        "the source gave it, {number, kind, date} (kind codes such as A1, B2 kept); "
        "null for a hosted dossier")
    documents: list[DocumentOut]
    citations: list[CitationOut]
    family: list[FamilyMemberOut]
