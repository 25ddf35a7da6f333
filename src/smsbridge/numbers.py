"""Phone numbers as people type them -> the provider's form: international digits without `+`."""

from __future__ import annotations

import phonenumbers


def normalise_number(text: str, region: str) -> str:
    """'0409 560 857' (region AU), '+61409560857' or '61409560857' -> '61409560857'.

    Raises ValueError with a message fit to show the person who typed it.
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("a phone number is empty")
    digits_only = cleaned.replace(" ", "").replace("-", "")
    # Without a leading + or 0, a long digit string is already international (61409560857).
    if digits_only.isdigit() and not digits_only.startswith("0") and len(digits_only) > 9:
        cleaned = "+" + digits_only
    try:
        number = phonenumbers.parse(cleaned, region.upper())
    except phonenumbers.NumberParseException:
        raise ValueError(f"{text!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{text!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")
