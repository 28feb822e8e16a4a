"""digests: delivery mode per channel, digests and their items, deliveries of a digest

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 11:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

import churn_shared.db


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ID = sqlmodel.sql.sqltypes.AutoString(length=36)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_mode', sa.String(length=16), server_default='immediate', nullable=False))
        batch_op.add_column(sa.Column('digest_hour', sa.Integer(), server_default='8', nullable=False))
        batch_op.add_column(sa.Column('next_digest_at', churn_shared.db.UTCDateTime(), nullable=True))

    op.create_table('digests',
    sa.Column('id', _ID, nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel_id', _ID, nullable=False),
    sa.Column('period_start', churn_shared.db.UTCDateTime(), nullable=False),
    sa.Column('period_end', churn_shared.db.UTCDateTime(), nullable=False),
    sa.Column('alert_count', sa.Integer(), nullable=False),
    sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['alert_channels.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index('ix_digests_channel_period_end', ['channel_id', 'period_end'], unique=False)
        batch_op.create_index(batch_op.f('ix_digests_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('digest_items',
    sa.Column('id', _ID, nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel_id', _ID, nullable=False),
    sa.Column('alert_id', _ID, nullable=False),
    sa.Column('digest_id', _ID, nullable=True),
    sa.Column('created_at', churn_shared.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.ForeignKeyConstraint(['channel_id'], ['alert_channels.id'], ),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_digest_items_channel_digest', ['channel_id', 'digest_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_digest_items_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_digest_items_digest_id'), ['digest_id'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('alert_id', existing_type=_ID, nullable=True)
        batch_op.add_column(sa.Column('digest_id', _ID, nullable=True))
        batch_op.create_index(batch_op.f('ix_deliveries_digest_id'), ['digest_id'], unique=False)
        batch_op.create_foreign_key('fk_deliveries_digest_id_digests', 'digests', ['digest_id'], ['id'])
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.alter_column('alert_id', existing_type=_ID, nullable=True)


def downgrade() -> None:
    """Downgrade schema (digest deliveries and their attempts go with the digests)."""
    op.execute("DELETE FROM delivery_attempts WHERE alert_id IS NULL")
    op.execute("DELETE FROM deliveries WHERE digest_id IS NOT NULL")
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.alter_column('alert_id', existing_type=_ID, nullable=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('fk_deliveries_digest_id_digests', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_deliveries_digest_id'))
        batch_op.drop_column('digest_id')
        batch_op.alter_column('alert_id', existing_type=_ID, nullable=False)
    op.drop_table('digest_items')
    op.drop_table('digests')
    with op.batch_alter_table('alert_channels', schema=None) as batch_op:
        batch_op.drop_column('next_digest_at')
        batch_op.drop_column('digest_hour')
        batch_op.drop_column('delivery_mode')
