"""tenants whose customers' attributes are being sent again after a champion moved

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 07:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from churn_shared.db import UTCDateTime


# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'customer_attribute_rescans',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('model_version', sa.String(length=64), nullable=True),
        sa.Column('after_customer_id', sa.String(length=64), nullable=True),
        sa.Column('requested_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('customer_attribute_rescans')
