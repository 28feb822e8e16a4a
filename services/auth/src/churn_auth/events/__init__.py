"""Kafka event handling of the auth service: auth publishes and consumes no events yet."""
