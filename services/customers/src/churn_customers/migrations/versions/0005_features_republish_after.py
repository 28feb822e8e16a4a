"""remember when the score reconciler may re-send a profile again

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('customer_features', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('republish_after', churn_shared.db.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('customer_features', schema=None) as batch_op:
        batch_op.drop_column('republish_after')
