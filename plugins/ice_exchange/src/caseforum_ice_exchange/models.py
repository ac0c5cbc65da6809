"""The plugin's tables (created by its own Alembic branch, ``ice_exchange``).

Exchange and parcel ids are UUIDs chosen by the office that creates them, so the
same exchange has the same id on both offices' instances. Nothing here refers to
dossier tables: an exchange names its application by office and number.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from caseforum.models import utcnow

INSTANCE_CHAIN = "_instance"
"""Audit chain for refusals that concern no office hosted here (e.g. mis-addressed)."""


class IceOfficeKey(SQLModel, table=True):
    """Key pairs of an office hosted on this instance; private halves wrapped under the KEK."""

    __tablename__ = "ice_office_key"

    office_code: str = Field(primary_key=True, foreign_key="office.code", max_length=2)
    x25519_public: str = Field(max_length=64)
    ed25519_public: str = Field(max_length=64)
    wrapped_private: str = Field(max_length=200)
    kek_salt: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class IcePeer(SQLModel, table=True):
    """An office that runs its own instance: where to push parcels, which keys to trust."""

    __tablename__ = "ice_peer"

    office_code: str = Field(primary_key=True, foreign_key="office.code", max_length=2)
    url: str = Field(max_length=500)
    x25519_public: str = Field(max_length=64)
    ed25519_public: str = Field(max_length=64)
    added_at: datetime = Field(default_factory=utcnow)


class IceExchange(SQLModel, table=True):
    """One request for help from a recipient office to a donor office."""

    __tablename__ = "ice_exchange"

    id: str = Field(primary_key=True, max_length=36)
    recipient_office: str = Field(foreign_key="office.code", index=True, max_length=2)
    donor_office: str = Field(foreign_key="office.code", index=True, max_length=2)
    application_office: str = Field(max_length=2)
    application_number: str = Field(index=True, max_length=40)
    application_display: str = Field(max_length=60)
    kind: str = Field(max_length=32)
    due_date: date | None = None
    route: str = Field(max_length=32)
    status: str = Field(index=True, max_length=24)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    requested_by: str = Field(default="", max_length=120)
    recipient_assignee_id: int | None = Field(default=None, foreign_key="user.id")
    donor_assignee_id: int | None = Field(default=None, foreign_key="user.id")
    # Last sequence number each side has sent, and the last one accepted from it.
    recipient_sent_seq: int = 0
    recipient_received_seq: int = 0
    donor_sent_seq: int = 0
    donor_received_seq: int = 0

    @property
    def parties(self) -> tuple[str, str]:
        return (self.recipient_office, self.donor_office)

    def side_of(self, office_code: str | None) -> str | None:
        """``"recipient"``, ``"donor"`` or None for an office that is not a party."""
        if office_code == self.recipient_office:
            return "recipient"
        if office_code == self.donor_office:
            return "donor"
        return None

    def other_party(self, office_code: str) -> str:
        return self.donor_office if office_code == self.recipient_office else self.recipient_office

    @property
    def overdue(self) -> bool:
        open_ = self.status not in ("closed", "declined", "acknowledged")
        return bool(self.due_date and open_ and self.due_date < datetime.now(UTC).date())


class IceParcel(SQLModel, table=True):
    """Signed, encrypted files (and a note) from one party to the other.

    The ciphertext lives in the data folder; the signed manifest is kept verbatim
    because it is what the signature and the receipt refer to.
    """

    __tablename__ = "ice_parcel"
    __table_args__ = (
        UniqueConstraint("exchange_id", "sender_office", "sequence",
                         name="uq_ice_parcel_sequence"),
    )

    id: str = Field(primary_key=True, max_length=36)
    exchange_id: str = Field(foreign_key="ice_exchange.id", index=True, max_length=36)
    kind: str = Field(max_length=24)
    sender_office: str = Field(max_length=2)
    recipient_office: str = Field(max_length=2)
    sequence: int
    route: str = Field(max_length=32)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    manifest_sha256: str = Field(max_length=64)
    signature: str = Field(max_length=120)
    status: str = Field(index=True, max_length=16)  # queued | delivered | refused
    created_at: datetime = Field(default_factory=utcnow)
    sent_by_id: int | None = Field(default=None, foreign_key="user.id")
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, index=True)
    last_error: str = ""
    verified_at: datetime | None = None
    receipt: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    receipt_signature: str | None = Field(default=None, max_length=120)
    delivered_at: datetime | None = None

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("files") or [])

    @property
    def has_note(self) -> bool:
        return bool(self.manifest.get("note"))


class IceAuditEntry(SQLModel, table=True):
    """One step in an office's hash-chained audit log (see ``audit_chain``)."""

    __tablename__ = "ice_audit_entry"
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_ice_audit_chain_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(index=True, max_length=16)
    seq: int
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)
    action: str = Field(max_length=48)
    exchange_id: str | None = Field(default=None, index=True, max_length=36)
    parcel_id: str | None = Field(default=None, max_length=36)
    actor: str = Field(default="", max_length=120)
    detail: str = ""

    @property
    def chain_fields(self) -> dict[str, Any]:
        """Everything the hash covers: every column except the chain links themselves."""
        return {
            "chain": self.chain,
            "at": format_instant(self.at),
            "action": self.action,
            "exchange_id": self.exchange_id,
            "parcel_id": self.parcel_id,
            "actor": self.actor,
            "detail": self.detail,
        }


class IceAuditHead(SQLModel, table=True):
    """The newest entry of each chain: serialises appends and exposes cut-off tails."""

    __tablename__ = "ice_audit_head"

    chain: str = Field(primary_key=True, max_length=16)
    seq: int = 0
    hash: str = Field(max_length=64)


def format_instant(moment: datetime) -> str:
    """Microsecond UTC text: the same on SQLite and PostgreSQL, so hashes survive."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
