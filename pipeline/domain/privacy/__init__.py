"""Privacy: a person by exact identity keys, redaction and erasure of their data."""
