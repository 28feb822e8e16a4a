"""Features derived at training and scoring time from the behavioural feature vector.

For non-contractual businesses the raw counts hide what matters: how long a customer has been
away *relative to their own rhythm*, whether they are buying more or less than they used to, and
what the textbook model (BG/NBD) expects of them. These are computed from the online features
every profile already carries (``churn_shared.contracts.FEATURE_NAMES``), so the model's input,
its recorded feature list and the online stream stay exactly what they were; the BG/NBD
parameters are fitted per tenant on the training rows (no labels) and stored with the model.

Definitions (days; ``x = total_orders - 1``, ``T = account_age_days``, ``t_x = T -
days_since_last_order``, see :func:`~churn_prediction.training.bgnbd.rfm_from_features`):

* ``bgnbd_expected_purchases``: BG/NBD's expected orders in the label's horizon.
* ``bgnbd_p_alive``: BG/NBD's probability that the customer is still active.
* ``purchase_interval_days``: mean days between orders, ``t_x / x`` (missing with one order).
* ``recency_ratio``: ``log(1 + days_since_last_order / purchase_interval_days)``.
* ``orders_per_30d``: tenure-normalised frequency, ``30 * total_orders / max(T, 30)``.
* ``order_rate_trend``: ``log(1 + ...)`` of the order rate of the last 90 days over the rate
  before them (``(orders_last_90d / 90) / ((total_orders - orders_last_90d + 1) / max(T - 90,
  90))``).
* ``spend_trend``: ``log(1 + ...)`` of the mean order value of the last 90 days over the
  lifetime mean (missing without a recent order).

Ratios enter as ``log(1 + ratio)``: the same splits for trees, a tamer scale for the linear
model.

Each feature is defined once: when the input schema carries the profile's history feature that
supersedes a derived one (``SUPERSEDED_BY``, computed exactly from the raw events by the customers
service, profile contract version 2), that derived feature is left out. A model keeps the
derived features it was trained with (:attr:`DerivedFeatures.credit`).

Explanations credit each derived feature's contribution to the input feature it is built on
(``CREDIT``), so contributions still add up exactly and name only the model's inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn_prediction.training.bgnbd import BGNBD, fit_bgnbd, rfm_from_features
from churn_prediction.training.features import FeatureSchema, FeatureSpec

__all__ = ["CREDIT", "REQUIRED", "SUPERSEDED_BY", "DerivedFeatures", "derived_names"]

FloatArray = npt.NDArray[np.float64]

#: The behavioural inputs every derived feature needs (all numeric).
REQUIRED = (
    "total_orders",
    "days_since_last_order",
    "account_age_days",
    "orders_last_90d",
    "spend_last_90d",
    "avg_order_value",
)
#: BG/NBD is fitted on at most this many training rows (a seeded sample of them).
BGNBD_FIT_ROWS = 3000
#: Each derived feature and the input feature its contribution is credited to.
CREDIT = {
    "bgnbd_expected_purchases": "days_since_last_order",
    "bgnbd_p_alive": "days_since_last_order",
    "purchase_interval_days": "total_orders",
    "recency_ratio": "days_since_last_order",
    "orders_per_30d": "total_orders",
    "order_rate_trend": "orders_last_90d",
    "spend_trend": "spend_last_90d",
}
#: Derived features a profile feature of the raw history defines better (exact intervals instead
#: of ``account_age_days``-based ones, trends against the preceding window instead of the
#: lifetime): left out when the schema has that feature.
SUPERSEDED_BY = {
    "purchase_interval_days": "order_interval_mean_days",
    "recency_ratio": "order_recency_ratio",
    "order_rate_trend": "order_rate_trend_90d",
    "spend_trend": "spend_trend_90d",
}


def derived_names(schema: FeatureSchema) -> list[str]:
    """The derived features added to ``schema`` (those no input feature supersedes)."""
    numeric = set(schema.numeric)
    return [name for name in CREDIT if SUPERSEDED_BY.get(name, "") not in numeric]


@dataclass
class DerivedFeatures:
    """Adds the derived columns to a canonical frame of ``schema`` (fit once on training rows)."""

    schema: FeatureSchema
    horizon_days: float
    bgnbd: BGNBD | None = None
    credit_index: list[int] = field(default_factory=list)
    #: ``(derived feature, input it is credited to)`` of each column added, in order. Instances
    #: stored before this was kept added every one of ``CREDIT`` (this class-level default).
    credit: tuple[tuple[str, str], ...] = field(default=tuple(CREDIT.items()), init=False)

    def __post_init__(self) -> None:
        self.credit = tuple((name, CREDIT[name]) for name in derived_names(self.schema))
        index = {name: j for j, name in enumerate(self.schema.names)}
        self.credit_index = [index[source] for _, source in self.credit]

    @property
    def names(self) -> list[str]:
        """The derived columns this instance adds."""
        return [name for name, _ in self.credit]

    @staticmethod
    def applicable(schema: FeatureSchema) -> bool:
        return all(name in schema.numeric for name in REQUIRED)

    @property
    def expanded(self) -> FeatureSchema:
        """The schema the wrapped model sees: the inputs, then the derived columns."""
        extra = tuple(FeatureSpec(name, "numeric") for name in self.names)
        return FeatureSchema(self.schema.features + extra)

    def fit(self, X: pd.DataFrame, cache: dict[bytes, BGNBD] | None = None) -> DerivedFeatures:
        """Fit BG/NBD on the rows ``X`` (no labels). ``cache`` (kept by the caller for one
        training run) reuses the fit for rows already seen: cross-validation and tuning fit
        several candidates on the same rows."""
        x, t_x, T = rfm_from_features(X)
        if len(x) > BGNBD_FIT_ROWS:  # four parameters: a fixed sample estimates them as well
            rows = np.sort(np.random.default_rng(0).choice(len(x), BGNBD_FIT_ROWS, replace=False))
            x, t_x, T = x[rows], t_x[rows], T[rows]
        key = hashlib.blake2b(x.tobytes() + t_x.tobytes() + T.tobytes(), digest_size=16).digest()
        fitted = cache.get(key) if cache is not None else None
        if fitted is None:
            # Fits within one run are on overlapping rows: start from the latest one.
            latest = next(reversed(cache.values()), None) if cache else None
            fitted = fit_bgnbd(x, t_x, T, start=latest)
            if cache is not None:
                cache[key] = fitted
        self.bgnbd = fitted
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if self.bgnbd is None:
            raise RuntimeError("derived features are not fitted")
        x, t_x, T = rfm_from_features(X)
        orders = X["total_orders"].to_numpy(dtype=np.float64)
        recent = X["orders_last_90d"].to_numpy(dtype=np.float64)
        spend_recent = X["spend_last_90d"].to_numpy(dtype=np.float64)
        mean_value = X["avg_order_value"].to_numpy(dtype=np.float64)
        since = X["days_since_last_order"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            interval = np.where(x > 0, t_x / np.maximum(x, 1.0), np.nan)
            derived = {
                "bgnbd_expected_purchases": self.bgnbd.expected_purchases(
                    self.horizon_days, x, t_x, T
                ),
                "bgnbd_p_alive": self.bgnbd.p_alive(x, t_x, T),
                "purchase_interval_days": interval,
                "recency_ratio": np.log1p(since / np.maximum(interval, 1.0)),
                "orders_per_30d": 30.0 * orders / np.maximum(T, 30.0),
                "order_rate_trend": np.log1p(
                    (recent / 90.0) / ((orders - recent + 1.0) / np.maximum(T - 90.0, 90.0))
                ),
                "spend_trend": np.where(
                    recent > 0,
                    np.log1p(
                        (spend_recent / np.maximum(recent, 1.0)) / np.maximum(mean_value, 1e-9)
                    ),
                    np.nan,
                ),
            }
        out = X.reset_index(drop=True).copy()
        for name in self.names:
            column = np.asarray(derived[name], dtype=np.float64)
            out[name] = np.where(np.isfinite(column), column, np.nan)
        return out

    def fold(self, contributions: FloatArray) -> FloatArray:
        """Contributions over the expanded schema → over the inputs (derived columns credited
        to their source; row sums unchanged)."""
        n_inputs = len(self.schema.features)
        out = np.array(contributions[:, :n_inputs], dtype=np.float64)
        for k, j in enumerate(self.credit_index):
            out[:, j] += contributions[:, n_inputs + k]
        return out
