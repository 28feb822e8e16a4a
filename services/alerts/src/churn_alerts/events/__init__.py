"""Kafka handlers of the alerts service."""
