"""Kafka: topic administration, producing and reading, and erasure of records."""
