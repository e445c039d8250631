"""Normalisation of the values that filters match on.

Writes index these terms; queries look them up. Both sides go through the same functions, so
"+1 (415) 888-9990" is found by ``phone_number=14158889990`` and by ``4158889990``.
"""

from __future__ import annotations

import re

import phonenumbers

from rolodex.domain.contact import ContactFields

_NON_DIGITS = re.compile(r"\D+")
_SPACES = re.compile(r"\s+")


# Terms are index keys; both sides cut them the same way, so matching stays exact enough.
MAX_TERM_LENGTH = 500


def email_term(email: str) -> str:
    return email.strip().casefold()[:MAX_TERM_LENGTH]


def phone_query_term(number: str) -> str:
    return _NON_DIGITS.sub("", number)[:MAX_TERM_LENGTH]


def phone_terms(number: str) -> set[str]:
    """Every digit string under which a stored number should be found."""
    digits = phone_query_term(number)
    if not digits:
        return set()
    terms = {digits}
    candidate = number.strip()
    if not candidate.startswith("+"):
        # A bare "14158889990" is most likely international without its "+".
        candidate = "+" + digits
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return terms
    if phonenumbers.is_valid_number(parsed):
        national = str(parsed.national_number)
        terms.add(national)
        terms.add(f"{parsed.country_code}{national}")
    return terms


def text_term(value: str) -> str:
    """Case- and spacing-insensitive form of free text such as address parts."""
    return _SPACES.sub(" ", value).strip().casefold()[:MAX_TERM_LENGTH]


def index_terms(fields: ContactFields) -> set[tuple[str, str]]:
    """The (kind, term) pairs under which the list filters find a contact."""
    terms: set[tuple[str, str]] = set()
    for email in fields.emails:
        terms.add(("email", email_term(email.email)))
    for phone in fields.phone_numbers:
        terms.update(("phone", t) for t in phone_terms(phone.number))
    for address in fields.physical_addresses:
        for part in ("street_address", "postal_code", "state", "country"):
            value = getattr(address, part)
            if value:
                terms.add((part, text_term(value)))
    return terms
