"""Leadflow: the lead pipeline's app, settings, domain logic and adapters."""
