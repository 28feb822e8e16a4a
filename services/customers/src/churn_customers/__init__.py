"""churn_customers."""
