"""Pure domain logic, one subpackage per stage (named like its agent): models in,
models or events out. Imports `schemas/`, `pipeline.errors` and its own kind
only: no Faust, Kafka, ClickHouse, HTTP, CLI or file reading.
"""
