"""instruments: answers name their instrument and version; the wording each had when first asked

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 20:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import store.types


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# The Solution Focused questions were asked from the same file, with the same wording, before
# they became the locked instrument samverkan-sf version 1.
SOLUTION_FOCUSED = (
    "best-hopes", "scale-now", "why-not-zero", "what-is-better", "difference-made",
    "what-works", "one-step-up",
)


def upgrade() -> None:
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('instrument_version', sa.Integer(), nullable=True))
    op.create_table('instrument_question',
    sa.Column('instrument', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('question_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('first_cycle_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('instrument', 'version', 'question_id')
    )
    response = sa.table(
        'response',
        sa.column('question_id', sa.String),
        sa.column('instrument', sa.String),
        sa.column('instrument_version', sa.Integer),
    )
    op.execute(
        response.update()
        .where(response.c.question_id.in_(SOLUTION_FOCUSED))
        .values(instrument='samverkan-sf', instrument_version=1)
    )


def downgrade() -> None:
    op.drop_table('instrument_question')
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.drop_column('instrument_version')
        batch_op.drop_column('instrument')
