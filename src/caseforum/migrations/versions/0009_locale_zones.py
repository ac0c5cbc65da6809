"""interface language: an empty locale is "no choice made"

Revision ID: 0009_locale_zones
Revises: 0008_subscriptions
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_locale_zones"
down_revision: str | None = "0008_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "en" was the column's default and could not be changed by anyone: nobody chose
    # it. Empty now means "no choice made": the browser's languages decide.
    op.execute("UPDATE \"user\" SET locale = '' WHERE locale = 'en'")


def downgrade() -> None:
    op.execute("UPDATE \"user\" SET locale = 'en' WHERE locale = ''")
