"""How many SMS parts a text costs. Pure.

The provider picks the encoding from the text: GSM-7 when every character is in its alphabet
(160 characters in one part, 153 in each part of a longer message; the extension characters
such as `€` and `{` take two), else UTF-16 (70 code units in one part, 67 each when longer;
characters outside the Basic Multilingual Plane, such as most emoji, take two).
"""

from __future__ import annotations

from dataclasses import dataclass

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True, slots=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UTF-16"
    units: int  # septets (GSM-7) or code units (UTF-16)
    parts: int

    @property
    def per_part(self) -> int:
        """The room in each part of a message this long."""
        single, multi = (160, 153) if self.encoding == "GSM-7" else (70, 67)
        return single if self.parts <= 1 else multi


def sms_size(text: str) -> SmsSize:
    """The encoding the provider will choose for `text`, and how many parts it takes."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text):
        units = sum(2 if ch in _GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
        single, multi, encoding = 70, 67, "UTF-16"
    parts = 1 if units <= single else -(-units // multi)
    return SmsSize(encoding, units, parts)
