"""index profiles by when they were computed, for the profile refresher

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 14:10:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_index('ix_customer_features_as_of', 'customer_features', ['as_of'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_customer_features_as_of', table_name='customer_features')
