"""Contact keys every stage compares by: a phone number in E.164. Capture checks
with it, identify matches people by it, privacy finds a person by it; so it lives
here, below the stages, and none of them imports another for it."""

from __future__ import annotations

import phonenumbers

COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""ISO 3166-1 alpha-2 codes with a telephone numbering plan (every inhabited country)."""


def normalise_phone(phone: str, region: str) -> str | None:
    """E.164 (`+4930123456`), or None if it cannot be a real number."""
    try:
        number = phonenumbers.parse(phone, region if region in COUNTRIES else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
