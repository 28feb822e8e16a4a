"""Kafka handlers of the prediction service."""
