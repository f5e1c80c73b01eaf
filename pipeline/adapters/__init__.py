"""Adapters to the outside: Kafka (admin, client, erasure), the warehouse
(ClickHouse through chdb or clickhouse-connect), the worker's HTTP API as a client,
the CRM webhook bridge and list imports.
"""
