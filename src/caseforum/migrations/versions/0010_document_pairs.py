"""documents in two languages: a translation names the original it translates

Revision ID: 0010_document_pairs
Revises: 0009_locale_zones
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_document_pairs"
down_revision: str | None = "0009_locale_zones"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN, instant however many documents there are. No foreign key: on
    # SQLite adding one means copying the document table, which it refuses to drop while
    # other tables refer to documents; documents are never deleted, and the service
    # checks every pairing (same dossier, visible to the uploader: service.check_original)
    op.add_column("document", sa.Column("translation_of", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_document_translation_of"), "document", ["translation_of"],
                    unique=False)

    # constant statement (schema.create_empty runs it too, a no-op on empty tables): remote
    # documents already knew their original's source reference (remote_document.original_ref,
    # migration 0007); the pair is that document of the same dossier.
    op.execute("UPDATE document SET translation_of = ("
               "SELECT o.document_id FROM remote_document t "
               "JOIN remote_document o ON o.ref = t.original_ref AND o.source = t.source "
               "JOIN document od ON od.id = o.document_id "
               "WHERE t.document_id = document.id AND od.application_id = document.application_id "
               "AND od.id <> document.id ORDER BY o.document_id LIMIT 1) "
               "WHERE translation_of IS NULL AND id IN ("
               "SELECT document_id FROM remote_document WHERE original_ref IS NOT NULL)")


def downgrade() -> None:
    op.drop_index(op.f("ix_document_translation_of"), table_name="document")
    op.drop_column("document", "translation_of")
