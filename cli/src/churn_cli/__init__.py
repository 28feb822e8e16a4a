"""churn_cli."""
