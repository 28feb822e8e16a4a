"""alert lifecycle: status changes, assignee, snooze, outcome; audit trail; delivery attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assignee_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('snoozed_until', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('resolution_note', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_alerts_tenant_status_created', ['tenant_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_alerts_status_snoozed_until', ['status', 'snoozed_until'], unique=False)

    op.create_table('alert_history',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert_history', schema=None) as batch_op:
        batch_op.create_index('ix_alert_history_tenant_alert_created', ['tenant_id', 'alert_id', 'created_at'], unique=False)

    op.create_table('delivery_attempts',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('alert_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('channel_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('attempted_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_attempts_delivery', ['delivery_id', 'attempted_at'], unique=False)
        batch_op.create_index('ix_delivery_attempts_tenant_alert', ['tenant_id', 'alert_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema (dropping a table drops its indexes)."""
    op.drop_table('delivery_attempts')
    op.drop_table('alert_history')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_status_snoozed_until')
        batch_op.drop_index('ix_alerts_tenant_status_created')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('resolution_note')
        batch_op.drop_column('outcome')
        batch_op.drop_column('snoozed_until')
        batch_op.drop_column('assignee_id')
