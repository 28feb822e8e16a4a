"""index processed_events by processed_at, for pruning

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 14:55:00.000000

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
    op.create_index(
        'ix_processed_events_processed_at', 'processed_events', ['processed_at'], unique=False
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_processed_events_processed_at', table_name='processed_events')
