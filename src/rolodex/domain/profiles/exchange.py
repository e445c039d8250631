"""Exchange (on-premises / EWS and ActiveSync), with the limits Nylas v2 documented.

Exchange stores a contact in fixed slots (providers.md §1c, §2c): ``EmailAddress1..3``,
``ImAddress1..3``, one ``BusinessHomePage``, one Business/Home/Other address, and one phone
per key except Business and Home, which have two. Nylas v2 additionally refused phones
without a type and the Other, Other fax, Callback, Telex and TTY/TDD types, and offered no
notes (contacts API guide, "Contacts API Limitations"); Rolodex keeps those rules so clients
written against v2 see the same behaviour. Phone types outside the v2 list (plus ``car``,
which the v2 SDKs document and EWS has a slot for) have no slot and are refused as well.
Email types are limited to the two v2 documents for Exchange. A contact lives in exactly
one contact folder.
"""

from __future__ import annotations

from rolodex.domain.profiles.rules import GroupModel, ListRule, Profile

PROFILE = Profile(
    provider="exchange",
    label="Exchange",
    order=3,
    groups=GroupModel(model="folders", max_per_contact=1, nested=True),
    unsupported=frozenset({"notes"}),
    lists={
        "emails": ListRule(max_items=3, types={"work": None, "personal": None}),
        "im_addresses": ListRule(max_items=3),
        "phone_numbers": ListRule(
            types={
                "business": 2,
                "home": 2,
                "mobile": 1,
                "pager": 1,
                "business_fax": 1,
                "home_fax": 1,
                "organization_main": 1,
                "assistant": 1,
                "radio": 1,
                "car": 1,
            },
            type_required=True,
        ),
        "physical_addresses": ListRule(
            types={"home": 1, "work": 1, "other": 1},
            type_required=True,
        ),
        "web_pages": ListRule(max_items=1),
    },
)
