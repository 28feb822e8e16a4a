"""Kafka → Socket.IO: the live feed's consumer handlers."""
