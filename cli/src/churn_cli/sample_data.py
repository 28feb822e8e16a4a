"""``churn sample-data``: a labelled customer file to try ``churn train`` and imports on.

Generated, not copied: a subscription business's customers with the columns such a business
exports (tenure, plan, charges, payment method, support tickets, logins, …) and a ``churned``
label drawn from a known logistic model of those columns, so the signal is real but modest
(cross-validated ROC-AUC around 0.8, like real churn data) and reproducible from the seed.
Standard library only, so it runs in a blink.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

COLUMNS = (
    "customer_id",
    "email",
    "tenure_months",
    "plan",
    "contract",
    "payment_method",
    "monthly_charges",
    "total_charges",
    "support_tickets_90d",
    "logins_30d",
    "payment_failures_90d",
    "discount",
    "churned",
)
_PLANS = ("basic", "standard", "premium")
_CONTRACTS = ("month-to-month", "one-year", "two-year")
_PAYMENTS = ("card", "bank-transfer", "invoice", "paypal")


def _row(rng: random.Random, index: int) -> dict[str, object]:
    contract = rng.choices(_CONTRACTS, weights=(55, 25, 20))[0]
    tenure = max(1, int(rng.expovariate(1 / (8 if contract == "month-to-month" else 28))))
    plan = rng.choices(_PLANS, weights=(45, 35, 20))[0]
    monthly = round(
        {"basic": 19.0, "standard": 39.0, "premium": 79.0}[plan] * rng.uniform(0.85, 1.2), 2
    )
    payment = rng.choice(_PAYMENTS)
    tickets = min(12, int(rng.expovariate(1.2)))
    logins = max(0, int(rng.gauss(14 - 2 * tickets, 6)))
    failures = min(6, int(rng.expovariate(3.0 if payment == "card" else 1.8)))
    discount = rng.random() < 0.2
    score = (
        -1.2
        + (1.3 if contract == "month-to-month" else -0.9 if contract == "two-year" else 0.0)
        - 0.045 * min(tenure, 60)
        + 0.012 * (monthly - 40)
        + 0.35 * tickets
        - 0.06 * logins
        + 0.55 * failures
        + (0.4 if payment == "invoice" else 0.0)
        - (0.3 if discount else 0.0)
    )
    churned = rng.random() < 1 / (1 + math.exp(-score))
    return {
        "customer_id": f"cust-{index:05d}",
        "email": f"customer{index}@example.com",
        "tenure_months": tenure,
        "plan": plan,
        "contract": contract,
        "payment_method": payment,
        "monthly_charges": monthly,
        "total_charges": round(monthly * tenure * rng.uniform(0.95, 1.0), 2),
        "support_tickets_90d": tickets,
        "logins_30d": logins,
        "payment_failures_90d": failures,
        "discount": "yes" if discount else "no",
        "churned": "yes" if churned else "no",
    }


def write_sample(path: Path, rows: int = 2000, seed: int = 7) -> int:
    """Write ``rows`` customers to ``path`` (CSV, UTF-8); returns how many churned."""
    rng = random.Random(seed)
    churned = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for index in range(1, rows + 1):
            row = _row(rng, index)
            churned += row["churned"] == "yes"
            writer.writerow(row)
    return churned
