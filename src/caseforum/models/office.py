"""Participating offices (WIPO ST.3 codes) and their roles."""

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
    public_access: bool = True
    ice_role: IceRole = IceRole.none
    peer_url: str | None = None

    @property
    def roles(self) -> list[str]:
        return [r for r, on in (("providing", self.providing), ("accessing", self.accessing)) if on]
