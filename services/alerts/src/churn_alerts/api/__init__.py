"""HTTP API of the alerts service."""
