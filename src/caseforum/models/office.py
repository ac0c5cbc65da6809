"""Participating offices (WIPO ST.3 codes) and their roles."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel


class IceRole(StrEnum):
    none = "none"
    donor = "donor"
    recipient = "recipient"
    both = "both"


class Office(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=2)
    name: str
    providing: bool = False
    accessing: bool = False
    #: anonymous visitors may see the office's dossiers and its documents marked
    #: public; off until the office (or the platform) switches it on
    public_access: bool = False
    ice_role: IceRole = IceRole.none
    peer_url: str | None = None
    # (last, as migration 0005 added them: a new database gets the same column order)
    #: when and by whom public access was last switched (``None``: never decided)
    public_access_changed_at: datetime | None = None
    public_access_changed_by: str | None = None
    #: the zone its examiners read times in unless they choose another (IANA name;
    #: empty: the instance default, ``default_time_zone``)
    time_zone: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})

    @property
    def roles(self) -> list[str]:
        return [r for r, on in (("providing", self.providing), ("accessing", self.accessing)) if on]
