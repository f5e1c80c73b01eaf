"""Distribute: queue routing, rep assignment, and the SLA clock."""
