"""risk level changes per customer (the dashboard's and cohorts' daily trends), filled from the
score histories

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 04:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: Every score whose level differs from the customer's previous score (by time) is a change.
_FROM_HISTORY = """
INSERT INTO customer_risk_changes (tenant_id, customer_id, changed_at, from_level, to_level)
SELECT tenant_id, customer_id, scored_at, previous, risk_level FROM (
    SELECT tenant_id, customer_id, scored_at, risk_level,
           LAG(risk_level) OVER (
               PARTITION BY tenant_id, customer_id ORDER BY scored_at, id
           ) AS previous
    FROM customer_scores
) ordered
WHERE previous IS NULL OR previous <> risk_level
"""

#: Customers scored before score histories were kept: their current level, since then.
_FROM_LATEST = """
INSERT INTO customer_risk_changes (tenant_id, customer_id, changed_at, from_level, to_level)
SELECT c.tenant_id, c.customer_id, c.scored_at, NULL, c.risk_level
FROM customers c
WHERE c.risk_level IS NOT NULL AND c.scored_at IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM customer_scores s
      WHERE s.tenant_id = c.tenant_id AND s.customer_id = c.customer_id
  )
"""


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'customer_risk_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.String(length=64), nullable=False),
        sa.Column('changed_at', churn_shared.db.UTCDateTime(), nullable=False),
        sa.Column('from_level', sa.String(length=16), nullable=True),
        sa.Column('to_level', sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_customer_risk_changes_tenant_changed',
        'customer_risk_changes',
        ['tenant_id', 'changed_at', 'from_level', 'to_level', 'customer_id'],
    )
    op.create_index(
        'ix_customer_risk_changes_tenant_customer',
        'customer_risk_changes',
        ['tenant_id', 'customer_id', 'changed_at'],
    )
    op.execute(_FROM_HISTORY)
    op.execute(_FROM_LATEST)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_customer_risk_changes_tenant_customer', table_name='customer_risk_changes')
    op.drop_index('ix_customer_risk_changes_tenant_changed', table_name='customer_risk_changes')
    op.drop_table('customer_risk_changes')
