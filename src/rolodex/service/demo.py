"""The demo account a fresh server starts with, so a newcomer sees contacts at once."""

from __future__ import annotations

import base64

import orjson

from rolodex.domain.account import Account
from rolodex.service.contacts import ContactService
from rolodex.service.groups import GroupService
from rolodex.service.pictures import PictureService

# A 1x1 PNG: the demo shows the picture route without shipping an image file.
_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/"
    "yvGwdQAAAABJRU5ErkJggg=="
)

DEMO_CONTACTS = [
    {
        "given_name": "My",
        "middle_name": "Nylas",
        "surname": "Friend",
        "suffix": "Jr.",
        "nickname": "Nylas",
        "birthday": "2011-01-01",
        "company_name": "Nylas",
        "job_title": "Communications Platform",
        "office_location": "San Francisco, Denver, New York",
        "notes": "Try the Nylas Communications Platform",
        "emails": [{"email": "swag@nylas.com", "type": "work"}],
        "im_addresses": [{"im_address": "myaimaddress", "type": "aim"}],
        "phone_numbers": [{"number": "1 800 123 4567", "type": "business"}],
    },
    {
        "given_name": "Ada",
        "surname": "Lovelace",
        "company_name": "Analytical Engines Ltd",
        "emails": [{"email": "ada@example.com", "type": "personal"}],
        "phone_numbers": [{"number": "+44 20 7946 0018", "type": "mobile"}],
        "physical_addresses": [
            {
                "type": "home",
                "street_address": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "United Kingdom",
            }
        ],
    },
    {
        "given_name": "Grace",
        "surname": "Hopper",
        "job_title": "Rear Admiral",
        "emails": [{"email": "grace@example.com", "type": "work"}],
        "phone_numbers": [{"number": "+1 (415) 888-9990", "type": "business"}],
        "web_pages": [{"url": "https://example.com/grace", "type": "homepage"}],
    },
]


def seed_demo(
    account: Account,
    contacts: ContactService,
    groups: GroupService,
    pictures: PictureService,
) -> None:
    work = groups.create(account, {"name": "Work"})
    for index, body in enumerate(DEMO_CONTACTS):
        if index != 1:
            body = {**body, "group": work.id}
        doc = contacts.create(account, body)
        if index == 0:
            pictures.put(account, orjson.loads(doc)["id"], _PIXEL_PNG)
