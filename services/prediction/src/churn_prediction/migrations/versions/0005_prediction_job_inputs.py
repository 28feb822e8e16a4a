"""prediction job inputs: a filter job's customer filter and whether drivers were requested

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    # Jobs recorded before this revision read as file jobs without drivers.
    with op.batch_alter_table('prediction_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('customers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('drivers', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('prediction_jobs', schema=None) as batch_op:
        batch_op.drop_column('drivers')
        batch_op.drop_column('customers')
