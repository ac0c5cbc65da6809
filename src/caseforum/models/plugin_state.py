"""Which plugins an administrator switched off (persisted across restarts)."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class PluginState(SQLModel, table=True):
    __tablename__ = "plugin_state"

    name: str = Field(primary_key=True)
    enabled: bool = True
    changed_by: str = ""
    changed_at: datetime = Field(default_factory=utcnow)
