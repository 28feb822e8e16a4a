"""HTTP routes of the prediction service."""
