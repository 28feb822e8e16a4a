"""Alembic environment of the auth service (one history, its own schema)."""

from churn_auth.models import Base
from churn_shared.db import alembic_env

alembic_env(Base.metadata)
