"""delivery guarantees: channel pacing, dead-delivery count, disabling; deliveries by status

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 11:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paced_until', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('consecutive_dead', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('disabled_at', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('disabled_reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_tenant_status_created', ['tenant_id', 'status', 'created_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_tenant_status_created')
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.drop_column('disabled_reason')
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('consecutive_dead')
        batch_op.drop_column('paced_until')
