"""a customer's risk level changes are indexed with their day and levels, so that a cohort's
trend reads them from the index alone

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:40:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0016'
down_revision: Union[str, Sequence[str], None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        'ix_customer_risk_changes_customer_levels',
        'customer_risk_changes',
        ['tenant_id', 'customer_id', 'changed_at', 'day', 'from_level', 'to_level'],
    )
    op.drop_index('ix_customer_risk_changes_tenant_customer', table_name='customer_risk_changes')


def downgrade() -> None:
    """Downgrade schema."""
    op.create_index(
        'ix_customer_risk_changes_tenant_customer',
        'customer_risk_changes',
        ['tenant_id', 'customer_id', 'changed_at'],
    )
    op.drop_index('ix_customer_risk_changes_customer_levels', table_name='customer_risk_changes')
