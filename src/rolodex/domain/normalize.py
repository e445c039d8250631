"""Normalisation of the values that filters match on.

Writes index these terms; queries look them up. Both sides go through the same functions, so
"+1 (415) 888-9990" is found by ``phone_number=14158889990`` and by ``4158889990``.
"""

from __future__ import annotations

import functools
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
    parsed = _international(number, digits)
    if parsed is not None:
        national = str(parsed.national_number)
        terms.add(national)
        terms.add(f"{parsed.country_code}{national}")
    return terms


# What a number written with digits and punctuation only may hold besides its digits.
_PLAIN_NUMBER = re.compile(r"\+?[\d\s\-.()/]+")


def _international(number: str, digits: str) -> phonenumbers.PhoneNumber | None:
    """The valid international number ``number`` is, if any.

    A bare "14158889990" is most likely international without its "+". Most stored numbers
    are plain ("+1 415 888 9990", as Google's and Graph's apps write them), and for those
    phonenumbers' parse, which costs as much as a first sync's whole mapping of a contact,
    is left out: the country code is the one prefix of the digits that is a calling code
    (calling codes are prefix-free), and the rest is the national number, as parse makes
    it unless the rest starts with a national prefix ("+44 (0)20 ...": parse strips it).
    Numbers with more than digits and punctuation (an extension, letters) are parsed.
    """
    if digits[0] != "0" and _PLAIN_NUMBER.fullmatch(number.strip()):
        for length in (1, 2, 3):
            code = int(digits[:length])
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                split = _split(code, digits[length:])
                if split is not None:
                    return split if _is_valid(split) else None
                break
    candidate = number.strip()
    if not candidate.startswith("+"):
        candidate = "+" + digits
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


def _split(code: int, rest: str) -> phonenumbers.PhoneNumber | None:
    """The number ``+{code}{rest}`` as phonenumbers' parse makes it, or None where parse
    may make it otherwise (``rest`` empty, or starting with what the country's metadata
    strips as a national prefix)."""
    region = phonenumbers.region_code_for_country_code(code)
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
    else:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if not rest or metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix is not None and _prefix_pattern(prefix).match(rest):
        return None
    split = phonenumbers.PhoneNumber(country_code=code, national_number=int(rest))
    zeros = len(rest) - len(rest.lstrip("0"))
    if zeros and len(rest) > 1:
        # As parse keeps them (Italian numbers start with a zero).
        split.italian_leading_zero = True
        if zeros > 1:
            split.number_of_leading_zeros = min(zeros, len(rest) - 1)
    return split


def _is_valid(number: phonenumbers.PhoneNumber) -> bool:
    """``phonenumbers.is_valid_number``, matching the number against its region's patterns
    once instead of twice where a calling code has several regions (+1: the US, Canada and
    the Caribbean). Its search for the region already matches a region without leading
    digits (the US) against every pattern, which is the whole of the validity check; only
    a region it takes by its leading digits (or the one region of a code) is checked."""
    code = number.country_code
    regions = () if code is None else phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) < 2:
        return phonenumbers.is_valid_number(number)
    region = phonenumbers.region_code_for_number(number)
    if region is None:
        return False
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is not None and metadata.leading_digits is None:
        return True
    return phonenumbers.is_valid_number_for_region(number, region)


@functools.cache
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(prefix)


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
