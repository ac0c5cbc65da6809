"""ICE exchange tables: office keys, peers, exchanges, parcels, audit chains

Revision ID: ice0001_initial
Revises:
Create Date: 2026-11-25 09:00:00

The plugin's own Alembic branch ("ice_exchange"). Generated from the models in
caseforum_ice_exchange.models; tests/test_schema.py checks they stay equal.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "ice0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("ice_exchange",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    op.create_table(
        "ice_audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("exchange_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("parcel_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain", "seq", name="uq_ice_audit_chain_seq"),
    )
    with op.batch_alter_table("ice_audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ice_audit_entry_chain"), ["chain"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ice_audit_entry_exchange_id"), ["exchange_id"], unique=False
        )

    op.create_table(
        "ice_audit_head",
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "ice_office_key",
        sa.Column("office_code", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("x25519_public", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ed25519_public", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("wrapped_private", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kek_salt", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_code"],
            ["office.code"],
        ),
        sa.PrimaryKeyConstraint("office_code"),
    )
    op.create_table(
        "ice_peer",
        sa.Column("office_code", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("x25519_public", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ed25519_public", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_code"],
            ["office.code"],
        ),
        sa.PrimaryKeyConstraint("office_code"),
    )
    op.create_table(
        "ice_exchange",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("recipient_office", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("donor_office", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("application_office", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column(
            "application_number", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False
        ),
        sa.Column(
            "application_display", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False
        ),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("route", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("recipient_assignee_id", sa.Integer(), nullable=True),
        sa.Column("donor_assignee_id", sa.Integer(), nullable=True),
        sa.Column("recipient_sent_seq", sa.Integer(), nullable=False),
        sa.Column("recipient_received_seq", sa.Integer(), nullable=False),
        sa.Column("donor_sent_seq", sa.Integer(), nullable=False),
        sa.Column("donor_received_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["donor_assignee_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["donor_office"],
            ["office.code"],
        ),
        sa.ForeignKeyConstraint(
            ["recipient_assignee_id"],
            ["user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recipient_office"],
            ["office.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ice_exchange", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ice_exchange_application_number"), ["application_number"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ice_exchange_donor_office"), ["donor_office"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ice_exchange_recipient_office"), ["recipient_office"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ice_exchange_status"), ["status"], unique=False)

    op.create_table(
        "ice_parcel",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("exchange_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("sender_office", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("recipient_office", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("route", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("sent_by_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("verified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("receipt_signature", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("delivered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["ice_exchange.id"],
        ),
        sa.ForeignKeyConstraint(
            ["sent_by_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "exchange_id", "sender_office", "sequence", name="uq_ice_parcel_sequence"
        ),
    )
    with op.batch_alter_table("ice_parcel", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ice_parcel_exchange_id"), ["exchange_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ice_parcel_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ice_parcel_status"), ["status"], unique=False)
    # The instance chain exists from the start, so refusals can always be audited.
    op.execute(
        "INSERT INTO ice_audit_head (chain, seq, hash) VALUES ('_instance', 0, '" + "0" * 64 + "')"
    )


def downgrade() -> None:
    with op.batch_alter_table("ice_parcel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ice_parcel_status"))
        batch_op.drop_index(batch_op.f("ix_ice_parcel_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_ice_parcel_exchange_id"))

    op.drop_table("ice_parcel")
    with op.batch_alter_table("ice_exchange", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ice_exchange_status"))
        batch_op.drop_index(batch_op.f("ix_ice_exchange_recipient_office"))
        batch_op.drop_index(batch_op.f("ix_ice_exchange_donor_office"))
        batch_op.drop_index(batch_op.f("ix_ice_exchange_application_number"))

    op.drop_table("ice_exchange")
    op.drop_table("ice_peer")
    op.drop_table("ice_office_key")
    op.drop_table("ice_audit_head")
    with op.batch_alter_table("ice_audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ice_audit_entry_exchange_id"))
        batch_op.drop_index(batch_op.f("ix_ice_audit_entry_chain"))

    op.drop_table("ice_audit_entry")
