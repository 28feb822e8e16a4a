"""A filter job's input rows (pure logic): which value each model feature takes, and which
customers cannot be scored and why."""

from __future__ import annotations

from churn_prediction.batch_jobs.runner import customer_input_row
from churn_shared.contracts.http import CustomerScoringInput


def customer(
    features: dict[str, float | None] | None, **attributes: object
) -> CustomerScoringInput:
    return CustomerScoringInput(customer_id="c-1", features=features, attributes=attributes)


def test_a_feature_comes_from_the_profile_first_then_from_the_attribute_of_that_name() -> None:
    row = customer_input_row(
        customer(
            {"total_orders": 4.0, "tenure_days": None}, total_orders=99, tenure_days=30, plan="gold"
        ),
        ["total_orders", "tenure_days", "plan", "seats"],
        reads_profile=True,
    )
    assert row == ["c-1", 4.0, 30, "gold", None, None]


def test_nested_attribute_values_are_json_text() -> None:
    row = customer_input_row(customer(None, tags=["a", "b"]), ["tags"], reads_profile=False)
    assert row == ["c-1", '["a","b"]', None]


def test_a_customer_without_a_profile_cannot_be_scored_by_an_events_model() -> None:
    row = customer_input_row(customer(None, plan="gold"), ["total_orders"], reads_profile=True)
    assert row == ["c-1", None, "no feature profile yet (no events recorded)"]


def test_a_customer_with_none_of_an_attribute_model_s_features_cannot_be_scored() -> None:
    row = customer_input_row(
        customer({"total_orders": 2.0}, plan=""), ["plan", "seats"], reads_profile=False
    )
    assert row == ["c-1", "", None, "no value for any of the model's features"]
