"""The one guard against CSV injection (OWASP): every CSV Leadflow writes for a
person to open in a spreadsheet (import error files, report exports) passes its
text cells through `spreadsheet_safe`."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell starting with one of these as a formula."""


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula: a leading =, +,
    -, @, tab or CR gets a quote in front."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value
