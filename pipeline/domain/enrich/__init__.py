"""Enrich: the provider chain that fills a lead's profile."""
