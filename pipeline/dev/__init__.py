"""Developer tools: the local Kafka broker, demo traffic, the worker-process harness."""
