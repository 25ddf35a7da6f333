"""Personal data kept out of logs and metrics: masked phone numbers, account labels. Pure.

A log line travels further than the database (log shippers, support tickets, screenshots), so
it carries no full phone number unless the operator turns full detail on for debugging
(`SMSBRIDGE_LOG_PERSONAL_DATA`), which `smsbridge run` announces loudly at start.
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

# Numbers written for people (+61 409 560 857, +61409560857) inside free text such as a
# provider's error message; bare digit strings are left alone, since ids can be digits too.
_WRITTEN_NUMBER = re.compile(r"\+\d(?:[ \-]?\d){6,16}")
_KEEP_LAST = 3


class Phone:
    """A phone number as a log argument: masked when formatted, unless full detail is on.

    Pass `Phone(number)` to a log call rather than the number itself; the mask is applied when
    the line is written, so a handler configured later still decides.
    """

    reveal = False  # set once at start from SMSBRIDGE_LOG_PERSONAL_DATA

    __slots__ = ("number",)

    def __init__(self, number: str | None) -> None:
        self.number = number

    def __str__(self) -> str:
        if self.number is None:
            return "(unknown)"
        return self.number if Phone.reveal else mask_number(self.number)

    __repr__ = __str__


def mask_number(digits: str) -> str:
    """61409560857 -> '+61 4xx xxx 857': the country, the first digit and the last three stay,
    enough to tell lines and people apart in a log, too little to call anyone."""
    raw = digits.strip()
    try:
        number = phonenumbers.parse(raw if raw.startswith("+") else "+" + raw)
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        country = f"+{number.country_code} "
    except phonenumbers.NumberParseException:
        written, country = raw, ""
    national = written.removeprefix(country)
    digit_count = sum(ch.isdigit() for ch in national)
    seen = 0
    masked = []
    for ch in national:
        if ch.isdigit():
            seen += 1
            keep = seen == 1 or seen > digit_count - _KEEP_LAST
            masked.append(ch if keep else "x")
        else:
            masked.append(ch)
    return country + "".join(masked)


def mask_written_numbers(text: str) -> str:
    """Every number written with a leading + in `text`, masked (for messages we did not write)."""
    return _WRITTEN_NUMBER.sub(lambda match: mask_number(match.group()), text)


def account_label(username: str, name: str | None) -> str:
    """What metrics call an account: the operator's name for it, else a short stable hash of
    the provider user name (which is a login, and no business of a metrics store)."""
    if name:
        return name
    return "account-" + hashlib.sha256(username.encode()).hexdigest()[:8]
