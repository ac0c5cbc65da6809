"""The durable event log and its consumers' cursors."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class Event(SQLModel, table=True):
    """Something that happened, written in the same transaction as the change."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(index=True, max_length=64)
    actor_id: int | None = None
    office_code: str | None = None
    subject_type: str = ""
    subject_id: str = ""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ConsumerCursor(SQLModel, table=True):
    __tablename__ = "consumer_cursor"

    name: str = Field(primary_key=True)
    last_event_id: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    last_error: str = ""
    attempts: int = 0


class AccountAudit(SQLModel, table=True):
    """Account and office history (log-ins, tokens, role changes, public access
    switched) built from the event log."""

    __tablename__ = "account_audit"

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(unique=True)
    at: datetime
    kind: str
    user_id: int | None = None
    actor_id: int | None = None
    detail: str = ""
    #: the office concerned (the user's office, or the office that was changed):
    #: what an office admin's history page shows (last, as migration 0005 added it)
    office_code: str | None = None
