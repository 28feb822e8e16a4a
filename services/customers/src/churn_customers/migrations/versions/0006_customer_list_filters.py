"""customer-list filters and sorts: searchable e-mail and name, risk-level and descending indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 01:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_SEARCH = {'search_email': 'email', 'search_name': 'name'}


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_email', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('search_name', sa.String(length=255), nullable=True))
    # Existing customers: the same lower-cased copy every attribute write now keeps.
    customers = sa.table(
        'customers',
        sa.column('id', sa.Integer()),
        sa.column('attributes', sa.JSON()),
        sa.column('search_email', sa.String()),
        sa.column('search_name', sa.String()),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(customers.c.id, customers.c.attributes)).all()
    updates = []
    for row_id, attributes in rows:
        values = {
            column: str(attributes[key]).lower()[:255]
            for column, key in _SEARCH.items()
            if isinstance(attributes, dict) and attributes.get(key) not in (None, '')
        }
        if values:
            updates.append({'b_id': row_id, 'search_email': None, 'search_name': None, **values})
    if updates:
        conn.execute(
            sa.update(customers)
            .where(customers.c.id == sa.bindparam('b_id'))
            .values(search_email=sa.bindparam('search_email'), search_name=sa.bindparam('search_name')),
            updates,
        )
    # Sorts by descending probability / activity with ties by ascending id, read in index order.
    op.create_index(
        'ix_customers_tenant_probability_desc',
        'customers',
        ['tenant_id', sa.text('churn_probability DESC'), 'customer_id'],
    )
    op.create_index(
        'ix_customers_tenant_updated_desc',
        'customers',
        ['tenant_id', sa.text('updated_at DESC'), 'customer_id'],
    )
    op.drop_index('ix_customers_tenant_probability', table_name='customers')
    op.drop_index('ix_customers_tenant_updated', table_name='customers')
    op.create_index(
        'ix_customers_tenant_risk', 'customers', ['tenant_id', 'risk_level', 'customer_id']
    )
    op.create_index(
        'ix_customers_tenant_search_email', 'customers', ['tenant_id', 'search_email']
    )
    op.create_index('ix_customers_tenant_search_name', 'customers', ['tenant_id', 'search_name'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_customers_tenant_search_name', table_name='customers')
    op.drop_index('ix_customers_tenant_search_email', table_name='customers')
    op.drop_index('ix_customers_tenant_risk', table_name='customers')
    op.create_index('ix_customers_tenant_updated', 'customers', ['tenant_id', 'updated_at'])
    op.create_index(
        'ix_customers_tenant_probability', 'customers', ['tenant_id', 'churn_probability']
    )
    op.drop_index('ix_customers_tenant_updated_desc', table_name='customers')
    op.drop_index('ix_customers_tenant_probability_desc', table_name='customers')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('search_name')
        batch_op.drop_column('search_email')
