"""The terms filters match on: phone numbers found under every form a user may type."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from rolodex.domain import normalize
from rolodex.domain.contact import ContactFields, Email, PhoneNumber, PhysicalAddress
from rolodex.domain.normalize import index_terms, phone_query_term, phone_terms


def parsed_terms(number: str) -> set[str]:
    """The terms as phonenumbers' own parse makes them: what the fast path must equal."""
    digits = phone_query_term(number)
    if not digits:
        return set()
    terms = {digits}
    candidate = number.strip()
    if not candidate.startswith("+"):
        candidate = "+" + digits
    try:
        parsed = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return terms
    if phonenumbers.is_valid_number(parsed):
        national = str(parsed.national_number)
        terms |= {national, f"{parsed.country_code}{national}"}
    return terms


def _written_forms() -> list[str]:
    """Every region's example numbers, as people and providers write them."""
    forms = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.VOIP):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for style in (
                PhoneNumberFormat.E164,
                PhoneNumberFormat.INTERNATIONAL,
                PhoneNumberFormat.NATIONAL,
                PhoneNumberFormat.RFC3966,
            ):
                forms.append(phonenumbers.format_number(example, style))
            code, national = example.country_code, example.national_number
            forms += [f"{code}{national}", f"+{code} (0) {national}", f"+{code} {national} x12"]
    return forms


def test_every_written_form_has_the_terms_phonenumbers_parse_gives() -> None:
    forms = _written_forms()
    assert len(forms) > 3000
    differ = [
        (f, phone_terms(f), parsed_terms(f)) for f in forms if phone_terms(f) != parsed_terms(f)
    ]
    assert differ == []


def test_numbers_of_codes_shared_by_several_regions_have_the_terms_parse_gives() -> None:
    """+1, +7, +44 and +262 name several regions each, told apart by leading digits or by
    the numbers' patterns (``normalize._is_valid`` checks the patterns once): random
    numbers, valid and not, of every length around theirs."""
    rng = random.Random(7)
    forms = [
        f"+{code} {rng.randrange(10 ** (length - 1), 10**length)}"
        for code in (1, 7, 44, 262)
        for length in (6, 8, 9, 10, 11)
        for _ in range(150)
    ]
    differ = [
        (f, phone_terms(f), parsed_terms(f)) for f in forms if phone_terms(f) != parsed_terms(f)
    ]
    assert differ == []
    assert sum(len(phone_terms(f)) > 1 for f in forms) > 100  # valid ones among them


def test_validity_is_phonenumbers_for_every_calling_code() -> None:
    """``normalize._is_valid`` checks a shared calling code's patterns once: for every
    calling code, its regions' example numbers, those numbers one digit off and one longer
    and shorter, and random numbers of every length there, it says what phonenumbers
    says."""
    rng = random.Random(11)
    numbers = []
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        for region in regions:
            for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                         PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE,
                         PhoneNumberType.VOIP, PhoneNumberType.UAN):  # fmt: skip
                example = phonenumbers.example_number_for_type(region, kind)
                if example is None:
                    example = phonenumbers.example_number_for_non_geo_entity(code)
                if example is None:
                    continue
                digits = str(example.national_number)
                for national in (
                    digits,
                    digits[:-1] + str((int(digits[-1]) + 1) % 10),
                    digits + "1",
                    digits[:-1],
                ):
                    if national:
                        numbers.append(phonenumbers.parse(f"+{code}{national}", None))
        for length in range(4, 14):
            for _ in range(4):
                national = str(rng.randrange(10 ** (length - 1), 10**length))
                numbers.append(
                    phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
                )
    assert len(numbers) > 10_000
    differ = [n for n in numbers if normalize._is_valid(n) != phonenumbers.is_valid_number(n)]
    assert differ == []
    assert sum(phonenumbers.is_valid_number(n) for n in numbers) > 2_000


@pytest.mark.parametrize(
    ("number", "terms"),
    [
        ("+1 (415) 888-9990", {"14158889990", "4158889990"}),
        ("14158889990", {"14158889990", "4158889990"}),
        # A national prefix after the country code is not part of the national number.
        ("+44 (0)20 7946 0000", {"4402079460000", "2079460000", "442079460000"}),
        # Italian numbers keep their leading zero; the national term is the digits after it.
        ("+39 06 1234 5678", {"390612345678", "612345678", "39612345678"}),
        # Not a valid number anywhere: found by its digits only.
        ("(415) 888-9990", {"4158889990"}),
        ("098 312 34 56", {"0983123456"}),
        ("+999 123", {"999123"}),
        ("+", set()),
        ("ext.", set()),
    ],
)
def test_phone_terms(number: str, terms: set[str]) -> None:
    assert phone_terms(number) == terms == parsed_terms(number)


def test_index_terms_of_a_contact() -> None:
    fields = ContactFields(
        emails=(Email(type="work", email=" Ada@Example.COM "),),
        phone_numbers=(PhoneNumber(type="mobile", number="+1 415 888 9990"),),
        physical_addresses=(
            PhysicalAddress(type="home", street_address="1  Main\tSt", postal_code="10000"),
        ),
    )
    assert index_terms(fields) == {
        ("email", "ada@example.com"),
        ("phone", "14158889990"),
        ("phone", "4158889990"),
        ("street_address", "1 main st"),
        ("postal_code", "10000"),
    }
