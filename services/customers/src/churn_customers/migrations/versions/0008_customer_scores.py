"""keep every score a customer receives as their risk history

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 01:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'customer_scores',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('scored_at', churn_shared.db.UTCDateTime(), nullable=False),
        sa.Column('churn_probability', sa.Double(), nullable=False),
        sa.Column('risk_level', sa.String(length=16), nullable=False),
        sa.Column('model_version', sa.String(length=128), nullable=False),
        sa.Column('drivers', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint(
            'tenant_id',
            'customer_id',
            'scored_at',
            'model_version',
            name='uq_customer_scores_tenant_customer_scored_model',
        ),
    )
    op.create_index(
        'ix_customer_scores_tenant_scored', 'customer_scores', ['tenant_id', 'scored_at']
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_customer_scores_tenant_scored', table_name='customer_scores')
    op.drop_table('customer_scores')
