"""interface language and time zones: an empty locale is "no choice made"; a zone
per office and per user

Revision ID: 0009_locale_zones
Revises: 0008_subscriptions
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_locale_zones"
down_revision: str | None = "0008_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("office", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      server_default="", nullable=False))
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sqlmodel.sql.sqltypes.AutoString(length=64),
                                      server_default="", nullable=False))

    # constant statements: schema.create_empty runs them too (on empty tables: no-ops).
    # The reference offices' zones (the seat of each office; offices.OFFICE_ZONES):
    op.execute("UPDATE office SET time_zone = CASE code "
               "WHEN 'AU' THEN 'Australia/Sydney' "
               "WHEN 'CA' THEN 'America/Toronto' "
               "WHEN 'CN' THEN 'Asia/Shanghai' "
               "WHEN 'IL' THEN 'Asia/Jerusalem' "
               "WHEN 'JP' THEN 'Asia/Tokyo' "
               "WHEN 'KR' THEN 'Asia/Seoul' "
               "WHEN 'GB' THEN 'Europe/London' "
               "WHEN 'US' THEN 'America/New_York' "
               "WHEN 'IB' THEN 'Europe/Zurich' "
               "WHEN 'EP' THEN 'Europe/Berlin' "
               "WHEN 'CL' THEN 'America/Santiago' "
               "WHEN 'IN' THEN 'Asia/Kolkata' "
               "WHEN 'ID' THEN 'Asia/Jakarta' "
               "WHEN 'LA' THEN 'Asia/Vientiane' "
               "WHEN 'MY' THEN 'Asia/Kuala_Lumpur' "
               "WHEN 'MN' THEN 'Asia/Ulaanbaatar' "
               "WHEN 'NZ' THEN 'Pacific/Auckland' "
               "WHEN 'PH' THEN 'Asia/Manila' "
               "WHEN 'SG' THEN 'Asia/Singapore' "
               "WHEN 'TH' THEN 'Asia/Bangkok' "
               "WHEN 'VN' THEN 'Asia/Ho_Chi_Minh' "
               "ELSE '' END WHERE time_zone = ''")
    # "en" was the column's default and could not be changed by anyone: nobody chose
    # it. Empty now means "no choice made": the browser's languages decide.
    op.execute("UPDATE \"user\" SET locale = '' WHERE locale = 'en'")


def downgrade() -> None:
    op.execute("UPDATE \"user\" SET locale = 'en' WHERE locale = ''")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    with op.batch_alter_table("office", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
