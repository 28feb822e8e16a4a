"""churn_shared."""
