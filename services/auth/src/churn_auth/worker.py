"""Background workers of the auth service.

Auth publishes no events and consumes none yet, so it runs no Kafka consumers and no outbox
relay, and its lifespan starts no workers. They go here when a later issue needs them.
"""
