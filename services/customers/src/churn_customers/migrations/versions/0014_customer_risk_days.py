"""risk level changes keep their UTC day (the trends group by it from an index), and the
tenant-wide daily rollup of them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 05:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('customer_risk_changes', sa.Column('day', sa.Date(), nullable=True))
    op.execute("UPDATE customer_risk_changes SET day = DATE(changed_at)")
    with op.batch_alter_table('customer_risk_changes') as batch:
        batch.alter_column('day', existing_type=sa.Date(), nullable=False)
        batch.drop_index('ix_customer_risk_changes_tenant_changed')
        batch.create_index(
            'ix_customer_risk_changes_tenant_day',
            ['tenant_id', 'day', 'from_level', 'to_level', 'customer_id'],
        )
    op.create_table(
        'customer_risk_days',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('high', sa.Integer(), nullable=False),
        sa.Column('medium', sa.Integer(), nullable=False),
        sa.Column('low', sa.Integer(), nullable=False),
        sa.Column('unscored', sa.Integer(), nullable=False),
        sa.Column('moved_up', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'day'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('customer_risk_days')
    with op.batch_alter_table('customer_risk_changes') as batch:
        batch.drop_index('ix_customer_risk_changes_tenant_day')
        batch.create_index(
            'ix_customer_risk_changes_tenant_changed',
            ['tenant_id', 'changed_at', 'from_level', 'to_level', 'customer_id'],
        )
        batch.drop_column('day')
