"""prediction jobs: files scored in the background

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 01:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel.sql.sqltypes

import churn_shared.db

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('prediction_jobs',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('input_format', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('input_bytes', sa.BigInteger(), nullable=False),
    sa.Column('model_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('id_column', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_scored', sa.Integer(), nullable=False),
    sa.Column('rows_failed', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', churn_shared.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', churn_shared.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('prediction_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_jobs_status_heartbeat', ['status', 'heartbeat_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_jobs_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('prediction_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_jobs_tenant_id'))
        batch_op.drop_index('ix_prediction_jobs_status_heartbeat')
    op.drop_table('prediction_jobs')
