"""churn_prediction."""
