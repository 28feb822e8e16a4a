"""churn_gateway: the platform's one public entry (routing, edge auth, rate limits, live feed)."""
