"""public access: off until an office switches it on, dated and audited

Revision ID: 0006_public_access
Revises: 0005_document_codes
Create Date: 2026-11-26 05:26:02.670741

Until now every office let anonymous visitors in by default, and nobody ever
chose it: no date, no name, no audit entry.  An office's content reaches the
public only when the office authorises it, so this revision switches public
access off for every office; an office admin (or the platform admin) switches it
back on from Admin → Offices, which records when and by whom.

The account history gains the office concerned, so that an office admin sees the
switches of the own office; older rows get their user's office.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006_public_access"
down_revision: str | None = "0005_document_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account_audit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("office_code", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    with op.batch_alter_table("office", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("public_access_changed_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                      nullable=True))
        batch_op.add_column(
            sa.Column("public_access_changed_by", sqlmodel.sql.sqltypes.AutoString(),
                      nullable=True))

    # constant statements: schema.create_empty runs them too (on empty tables: no-ops)
    op.execute("UPDATE office SET public_access = FALSE WHERE public_access_changed_at IS NULL")
    op.execute('UPDATE account_audit SET office_code = (SELECT "user".office_code FROM "user" '
               'WHERE "user".id = account_audit.user_id) WHERE office_code IS NULL')


def downgrade() -> None:
    with op.batch_alter_table("office", schema=None) as batch_op:
        batch_op.drop_column("public_access_changed_by")
        batch_op.drop_column("public_access_changed_at")

    with op.batch_alter_table("account_audit", schema=None) as batch_op:
        batch_op.drop_column("office_code")
