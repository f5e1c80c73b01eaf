"""Entrypoints: the `leadflow` CLI and the demo."""
