from churn_alerts.models import Base
from churn_shared.db import alembic_env

alembic_env(Base.metadata)
