"""risk bands with hysteresis: the tenant's exit threshold, each customer's band

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('alert_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('high_exit_threshold', sa.Float(), nullable=True))
    op.create_table('risk_bands',
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('in_high_band', sa.Boolean(), nullable=False),
    sa.Column('churn_probability', sa.Float(), nullable=False),
    sa.Column('changed_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'customer_id')
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('risk_bands')
    with op.batch_alter_table('alert_rules', schema=None) as batch_op:
        batch_op.drop_column('high_exit_threshold')
