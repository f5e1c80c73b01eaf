"""The warehouse: ClickHouse (embedded chdb or a server), migrations, erasure."""
