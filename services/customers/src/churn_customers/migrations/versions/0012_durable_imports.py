"""durable customer imports: XLSX, column mapping, resumable jobs, row error reports

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 05:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_format', sa.String(length=8), server_default='csv', nullable=False))
        batch_op.add_column(sa.Column('encoding', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('mapping', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('file_bytes', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('content_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('processed_rows', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('heartbeat_at', churn_shared.db.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_customer_imports_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_customer_imports_tenant_content', ['tenant_id', 'content_key'], unique=False)
        batch_op.create_unique_constraint('uq_customer_imports_tenant_idempotency_key', ['tenant_id', 'idempotency_key'])
    # Imports queued or running before this version have no file on disk (it lived in the
    # process that received it): they can never finish.
    op.execute(
        "UPDATE customer_imports SET status = 'failed', "
        "failure = 'The service was upgraded while this import waited; upload the file again.' "
        "WHERE status IN ('queued', 'running')"
    )
    op.create_table(
        'customer_import_errors',
        sa.Column('import_id', sa.String(length=36), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('column', sa.String(length=255), nullable=True),
        sa.Column('value', sa.Text(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('import_id', 'line'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('customer_import_errors')
    with op.batch_alter_table('customer_imports', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customer_imports_tenant_idempotency_key', type_='unique')
        batch_op.drop_index('ix_customer_imports_tenant_content')
        batch_op.drop_index('ix_customer_imports_status_created')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('processed_rows')
        batch_op.drop_column('idempotency_key')
        batch_op.drop_column('content_key')
        batch_op.drop_column('file_bytes')
        batch_op.drop_column('mapping')
        batch_op.drop_column('encoding')
        batch_op.drop_column('file_format')
