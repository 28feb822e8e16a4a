"""The models a replica serves, in memory: the global default, each tenant's champion, and each
tenant's challenger (for shadow scoring).

A model trained on point-in-time event sets reads exactly one of ``ONLINE_FEATURE_SETS`` (the
profile's features of the contract version it was trained on, all numeric), so it can score the
online stream (``customer.features.v1``). A model trained on imported customer
attributes (a labelled snapshot) has its own schema: it serves ``POST /v1/predictions``, the
batch endpoint and the customers whose attributes change (``customer.attributes.v1``); the
online stream keeps the global default (or the tenant's events model when that is the
champion). Loading registry versions into these is the registry's job
(:mod:`churn_prediction.registry.loading`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from churn_prediction.exceptions import ModelNotLoadedError
from churn_prediction.scoring.scorer import Scorer
from churn_shared.contracts import ONLINE_FEATURE_SETS

CHAMPION = "champion"
CHALLENGER = "challenger"
#: The model name integrators use in the inference protocols: the tenant's champion.
SERVED_MODEL_NAME = "churn"


@dataclass(frozen=True, slots=True)
class ServingModel:
    """A registry version loaded into memory, ready to score."""

    version: str
    tenant_id: str | None
    model: Scorer[Any]
    metrics: dict[str, Any]
    created_at: datetime
    kind: str
    training_source: dict[str, Any] | None = None

    @property
    def online(self) -> bool:
        """Reads exactly an online feature set (can score ``customer.features.v1``)."""
        names = tuple(self.model.feature_names)
        return names in ONLINE_FEATURE_SETS.values() and self.model.numeric_only


@dataclass(slots=True)
class ServingModels:
    """What every replica serves: the global default, each tenant's champion, and each tenant's
    challenger (kept for shadow scoring when it reads the online features)."""

    default: ServingModel | None = None
    by_tenant: dict[str, ServingModel] = field(default_factory=dict)
    challengers: dict[str, ServingModel] = field(default_factory=dict)
    _reload_locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    @property
    def loaded(self) -> bool:
        return self.default is not None

    def put(self, serving: ServingModel, alias: str = CHAMPION) -> None:
        if serving.tenant_id is None:
            if alias == CHAMPION:
                self.default = serving
        elif alias == CHAMPION:
            self.by_tenant[serving.tenant_id] = serving
        else:
            self.challengers[serving.tenant_id] = serving

    def replace_tenant(
        self, tenant_id: str, champion: ServingModel | None, challenger: ServingModel | None
    ) -> None:
        """Swap a tenant's models in one step (dict assignments; no await in between)."""
        if champion is None:
            self.by_tenant.pop(tenant_id, None)
        else:
            self.by_tenant[tenant_id] = champion
        if challenger is None:
            self.challengers.pop(tenant_id, None)
        else:
            self.challengers[tenant_id] = challenger

    def reload_lock(self, tenant_id: str) -> asyncio.Lock:
        """Held by whoever re-reads a tenant's aliases and swaps its models in: reloads of one
        tenant (a promotion on this replica, the broadcast ``ModelPromotedV1``, a finished
        training job) run one after the other, so one that read the aliases before a change
        cannot swap its models in after a reload that read them since."""
        lock = self._reload_locks.get(tenant_id)
        if lock is None:
            lock = self._reload_locks[tenant_id] = asyncio.Lock()
        return lock

    def for_tenant(self, tenant_id: str) -> ServingModel:
        """The tenant's own champion, or the global default when it has none (HTTP scoring)."""
        serving = self.by_tenant.get(tenant_id) or self.default
        if serving is None:
            raise ModelNotLoadedError("No model is loaded yet.")
        return serving

    def named(self, tenant_id: str, name: str) -> ServingModel | None:
        """A model by the name an inference protocol gives: ``churn`` or ``champion`` (the
        tenant's champion, else the default), ``challenger``, or a version this replica serves
        to the tenant (its champion, its challenger or the global default); ``None`` otherwise.
        """
        if name in (SERVED_MODEL_NAME, CHAMPION):
            return self.by_tenant.get(tenant_id) or self.default
        if name == CHALLENGER:
            return self.challengers.get(tenant_id)
        for serving in (self.by_tenant.get(tenant_id), self.challengers.get(tenant_id)):
            if serving is not None and serving.version == name:
                return serving
        if self.default is not None and self.default.version == name:
            return self.default
        return None

    def online_for_tenant(self, tenant_id: str) -> ServingModel:
        """The model scoring the tenant's online stream: its champion when that reads the online
        features, else the global default."""
        serving = self.by_tenant.get(tenant_id)
        if serving is not None and serving.online:
            return serving
        if self.default is None:
            raise ModelNotLoadedError("No model is loaded yet.")
        return self.default

    def attribute_champion(self, tenant_id: str) -> ServingModel | None:
        """The tenant's champion when it reads imported attributes (not the online features),
        which scores customers whose attributes change; ``None`` otherwise."""
        serving = self.by_tenant.get(tenant_id)
        if serving is None or serving.online:
            return None
        return serving

    def shadow_for_tenant(self, tenant_id: str, champion_version: str) -> ServingModel | None:
        challenger = self.challengers.get(tenant_id)
        if challenger is None or not challenger.online or challenger.version == champion_version:
            return None
        return challenger
