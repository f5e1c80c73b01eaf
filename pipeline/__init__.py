"""Leadflow: an event-driven lead pipeline on Kafka with ClickHouse analytics.

The layers, each a subpackage that imports only the ones below it (import-linter
checks, `make lint`): `entrypoints` → `dev` → `bootstrap` → `agents/` →
`worker` → `reporting` → `adapters` → `config` → `domain` → `schemas/` →
`errors` (the lowest, so every package may raise a project error). See README,
"Architecture".
"""
