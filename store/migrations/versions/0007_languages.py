"""languages: a cycle's fallback language, the language each message is written in, sign-off
texts keyed by a full language tag

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fallback_language', sa.String(length=35), nullable=True))
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_language', sa.String(length=35), nullable=True))
    with op.batch_alter_table('signoff_variant', schema=None) as batch_op:
        batch_op.alter_column('language', existing_type=sa.String(length=8), type_=sa.String(length=35), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('signoff_variant', schema=None) as batch_op:
        batch_op.alter_column('language', existing_type=sa.String(length=35), type_=sa.String(length=8), existing_nullable=False)
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('content_language')
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.drop_column('fallback_language')
