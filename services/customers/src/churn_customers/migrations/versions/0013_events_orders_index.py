"""index events by (tenant, type, customer, time), for retention curves

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 05:00:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index(
        'ix_events_tenant_type_customer_occurred',
        'events',
        ['tenant_id', 'type', 'customer_id', 'occurred_at'],
        unique=False,
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_events_tenant_type_customer_occurred', table_name='events')
