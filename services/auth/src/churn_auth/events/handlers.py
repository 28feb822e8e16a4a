"""Kafka handlers of the auth service.

Auth neither consumes nor publishes events yet; handlers for, e.g., user lifecycle events
belong here when a later issue adds them.
"""
