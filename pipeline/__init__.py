"""Leadflow: an event-driven lead pipeline on Kafka with ClickHouse analytics.

The layers, each a subpackage that imports only the ones below it (import-linter
checks, `make lint`): `entrypoints` and `dev` → `bootstrap` → `agents/` →
`worker` → `reporting` → `adapters` → `config` → `domain` → `schemas/`
(with `errors` shared by all). See README, "Architecture".
"""
