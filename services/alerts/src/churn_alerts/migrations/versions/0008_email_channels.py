"""e-mail channels: their recipients

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipients', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema (e-mail channels cannot exist without their recipients)."""
    op.execute("UPDATE alert_channels SET active = false WHERE kind = 'email'")
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.drop_column('recipients')
