"""document codes from any office: longer codes, the office's own label

Revision ID: 0005_document_codes
Revises: 0004_quiet_posts
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_document_codes"
down_revision: str | None = "0004_quiet_posts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.alter_column("code", existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=20),
                              existing_nullable=False)
        batch_op.add_column(sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=300),
                                      nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_column("label")
        batch_op.alter_column("code", existing_type=sqlmodel.sql.sqltypes.AutoString(length=20),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=16),
                              existing_nullable=False)
