"""saved customer segments (cohorts)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 02:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'customer_cohorts',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('filter', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', churn_shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'name', name='uq_customer_cohorts_tenant_name'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('customer_cohorts')
