"""churn_alerts."""
