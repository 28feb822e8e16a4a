"""keep each customer's incremental feature state beside their profile

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 01:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema. Existing profiles get no state: the next ingest or refresh of each
    customer builds it from their history once."""
    with op.batch_alter_table('customer_features', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('customer_features', schema=None) as batch_op:
        batch_op.drop_column('state')
