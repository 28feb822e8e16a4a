"""Hot reload: swap a tenant's champion and challenger in after their aliases moved.

Every path that moves an alias reloads through here: the replica that promoted or rolled back
(after its commit), every replica on ``ModelPromotedV1``, a finished training job, a consumer
that finds the registry ahead of what it serves. A reload holds the tenant's reload lock and
reads the aliases in a transaction begun under that lock, so the last reload to run has read
the last committed aliases: a slower one that read them earlier cannot swap an older champion
in over a newer one.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.serving import ServingModels
from churn_shared.db import unit_of_work


async def reload_tenant_models(
    session_factory: async_sessionmaker[AsyncSession],
    models: ServingModels,
    tenant_id: str,
    num_threads: int,
) -> None:
    """Re-read the tenant's aliases (a transaction of its own) and swap its models in."""
    async with models.reload_lock(tenant_id), unit_of_work(session_factory) as session:
        await ModelRegistryService(session).reload_tenant(models, tenant_id, num_threads)
