"""A behavioural simulator of customer history, for the default model and for tests.

The generative story
--------------------
Every customer has a latent **engagement** ``e`` in ``[0, 1]`` (Beta(2.2, 1.6), so most customers
are reasonably engaged and a long tail is not). The less engaged a customer is, the more likely
they are **disengaging**: ``P(disengaging) = sigmoid(7 * (0.42 - e))``. Engagement and that state
drive everything the platform can observe, over an account age drawn uniformly from 30 to 1,000
days:

* **Orders.** A healthy customer orders every 15-45 days (the more engaged, the more often); a
  disengaging one used to, but now orders 1.5-3 times less often. Each customer has an average
  order value of 30-150, each order varying ±10 % around it. ``total_orders`` is Poisson over the
  account's lifetime, ``total_spent`` its sum, ``avg_order_value`` their ratio.
* **Recency and recent activity.** ``days_since_last_order`` is 0-45 for a healthy customer and
  45-250 for a disengaging one (never beyond the account age). ``orders_last_90d`` counts the last
  order plus those in the rest of the 90-day window before it (0 when the last order is older
  than 90 days); ``spend_last_90d`` is their value.
* **Engagement signals.** ``email_open_rate`` is 0.25-0.7 (healthy) or 0-0.15 (disengaging);
  ``logins_last_30d`` is 3-20 or 0-3.
* **Friction.** A disengaging customer has 1-5 support tickets and (with probability 0.7) 1-5
  failed payments in the last 90 days; a healthy one occasionally has one or two.
* **The rest.** ``discount_usage_rate`` (bargain hunters lean on discounts, more so when
  disengaging), ``returns_count`` (≈ 6 % of orders, 12 % when disengaging) and
  ``loyalty_points`` (earned with spend, partly redeemed).

Customers without any order have no ``avg_order_value`` and no ``days_since_last_order`` (NaN),
as the customers service reports them.

**Churn** is then a Bernoulli draw whose log-odds are a logistic function of the *behavioural
causes* the platform can see — long recency, activity falling below the customer's own lifetime
rate, failed payments, support tickets, few e-mail opens and few logins — plus Gaussian noise
(sigma = 0.6) for everything the platform cannot see. A model therefore learns the causes (held-out
ROC-AUC ≈ 0.96 with the default model), not the latent state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from churn_shared.contracts import FEATURE_NAMES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True, slots=True)
class SimulatedHistory:
    """Feature vectors (columns in :data:`FEATURE_NAMES` order) and churn labels (0/1)."""

    features: FloatArray
    labels: IntArray
    churn_probability: FloatArray

    @property
    def positive_rate(self) -> float:
        return float(self.labels.mean()) if len(self.labels) else 0.0


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def churn_log_odds(features: FloatArray) -> FloatArray:
    """The behavioural part of the churn log-odds (before the unobserved noise)."""
    col = {name: features[:, i] for name, i in _INDEX.items()}
    total_orders = col["total_orders"]
    recency = np.nan_to_num(col["days_since_last_order"], nan=365.0)
    lifetime_rate_90d = total_orders * 90.0 / np.maximum(col["account_age_days"], 1.0)
    activity_ratio = np.minimum(col["orders_last_90d"] / np.maximum(lifetime_rate_90d, 0.5), 2.0)
    logit: FloatArray = (
        -2.4
        + 0.016 * recency
        - 0.9 * activity_ratio
        + 0.45 * col["payment_failures_last_90d"]
        + 0.25 * col["support_tickets_last_90d"]
        - 3.0 * col["email_open_rate"]
        - 0.06 * col["logins_last_30d"]
    )
    return logit


def simulate_customers(n: int, seed: int = 42, *, noise: float = 0.6) -> SimulatedHistory:
    """Simulate ``n`` customers' feature vectors and churn outcomes, reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    engagement = rng.beta(2.2, 1.6, n)
    disengaging = rng.random(n) < _sigmoid(7.0 * (0.42 - engagement))
    healthy = ~disengaging

    account_age = rng.integers(30, 1001, n).astype(np.float64)
    # Healthy: every 15-45 days, more often when more engaged; disengaging: 1.5-3x less often.
    interval = 15.0 + 30.0 * (1.0 - engagement) * rng.uniform(0.8, 1.0, n)
    interval = np.where(disengaging, interval * rng.uniform(1.5, 3.0, n), interval)
    aov = rng.uniform(30.0, 150.0, n)

    total_orders = rng.poisson(account_age / interval).astype(np.float64)
    has_orders = total_orders > 0

    recency = np.where(healthy, rng.uniform(0.0, 45.0, n), rng.uniform(45.0, 250.0, n))
    recency = np.floor(np.minimum(recency, account_age))
    window = np.maximum(90.0 - recency, 0.0)
    recent_extra = rng.poisson(window / interval).astype(np.float64)
    orders_90d = np.where(recency <= 90.0, 1.0 + recent_extra, 0.0)
    orders_90d = np.minimum(orders_90d, total_orders)

    order_value_noise = rng.uniform(0.9, 1.1, n)
    total_spent = np.round(total_orders * aov * order_value_noise, 2)
    spend_90d = np.round(orders_90d * aov * rng.uniform(0.9, 1.1, n), 2)
    spend_90d = np.minimum(spend_90d, total_spent)
    avg_order_value = np.where(has_orders, total_spent / np.maximum(total_orders, 1.0), np.nan)
    days_since = np.where(has_orders, recency, np.nan)

    open_rate = np.where(healthy, rng.uniform(0.25, 0.7, n), rng.uniform(0.0, 0.15, n))
    logins = np.where(healthy, rng.integers(3, 21, n), rng.integers(0, 4, n)).astype(np.float64)
    tickets = np.where(healthy, rng.binomial(2, 0.08, n), rng.integers(1, 6, n)).astype(np.float64)
    failures = np.where(
        healthy,
        rng.binomial(2, 0.04, n),
        np.where(rng.random(n) < 0.7, rng.integers(1, 6, n), 0),
    ).astype(np.float64)

    bargain = rng.beta(1.5, 4.0, n)
    discount_rate = np.clip(bargain + np.where(disengaging, 0.15, 0.0), 0.0, 1.0)
    discount_rate = np.where(has_orders, np.round(discount_rate, 3), 0.0)
    returns = rng.binomial(total_orders.astype(np.int64), np.where(disengaging, 0.12, 0.06))
    loyalty = np.floor(total_spent * rng.uniform(0.3, 1.0, n))

    features = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    values = {
        "total_orders": total_orders,
        "total_spent": total_spent,
        "avg_order_value": avg_order_value,
        "days_since_last_order": days_since,
        "orders_last_90d": orders_90d,
        "spend_last_90d": spend_90d,
        "email_open_rate": np.round(open_rate, 4),
        "logins_last_30d": logins,
        "support_tickets_last_90d": tickets,
        "payment_failures_last_90d": failures,
        "discount_usage_rate": discount_rate,
        "returns_count": returns.astype(np.float64),
        "loyalty_points": loyalty,
        "account_age_days": account_age,
    }
    for name, i in _INDEX.items():
        features[:, i] = values[name]

    logit = churn_log_odds(features) + rng.normal(0.0, noise, n)
    probability = _sigmoid(logit)
    labels = (rng.random(n) < probability).astype(np.int64)
    return SimulatedHistory(features=features, labels=labels, churn_probability=probability)
