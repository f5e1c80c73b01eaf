"""What every rule model shares: rules (YAML a RevOps person writes) are validated
once at start into frozen models that refuse unknown keys, so a typo in a rule
file is an error at start, never a silently ignored setting."""

from __future__ import annotations

from pydantic import ConfigDict

RULE = ConfigDict(frozen=True, extra="forbid")
"""The `model_config` of every rule model: frozen (loaded once, never changed in
flight) and strict about keys (an unknown key is a typo, not an extension)."""
