"""tags on customers (bulk tag/untag, the list's tag filter)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 02:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'customer_tags',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('tag', sa.String(length=64), nullable=False),
        sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'customer_id', 'tag'),
    )
    op.create_index(
        'ix_customer_tags_tenant_tag', 'customer_tags', ['tenant_id', 'tag', 'customer_id']
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_customer_tags_tenant_tag', table_name='customer_tags')
    op.drop_table('customer_tags')
