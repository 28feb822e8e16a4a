"""churn_auth."""
