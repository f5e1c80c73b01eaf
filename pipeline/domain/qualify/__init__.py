"""Qualify: scoring, the win model, and re-qualification on every new datum."""
