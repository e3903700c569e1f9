"""Kafka plumbing: topics, the event envelope, producer, consumer loop, DLQ, embedded broker."""
