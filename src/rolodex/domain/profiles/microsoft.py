"""Microsoft 365 / Outlook.com contacts through Microsoft Graph v1.0.

Graph v1.0 has fixed slots (providers.md §2b): ``emailAddresses`` and ``imAddresses`` hold 3
each, ``businessPhones`` and ``homePhones`` 2 each, ``mobilePhone`` 1, one address each for
home, business and other, and one ``businessHomePage``. A phone of any other type has no
v1.0 property, so it is refused rather than silently dropped, and a phone without a type
cannot be placed in a slot. Email, IM and web page types have no Graph property either but
take no slot choice, so any type is kept on the Rolodex side. Notes are supported
(``personalNotes``); the "no notes" rule was Nylas' Exchange ActiveSync limit, not Graph's.
A contact lives in exactly one contact folder. Graph cannot delete a contact's photo
("The OData request is not supported.", google-microsoft.md §2 #13), so removing a picture
is refused before anything is sent.
"""

from __future__ import annotations

from rolodex.domain.profiles.rules import GroupModel, ListRule, Profile

PROFILE = Profile(
    provider="microsoft",
    label="Microsoft 365",
    order=2,
    groups=GroupModel(
        model="folders",
        max_per_contact=1,
        nested=True,
        # The mailbox's default folder cannot be deleted (DOC contactfolder-delete: "other
        # than the default contactFolder"), and it is where the contacts of a deleted
        # folder go, since deleting an Outlook folder deletes the contacts in it.
        fixed={"Contacts": "it is the mailbox's default contact folder"},
        default="Contacts",
    ),
    pictures_deletable=False,
    lists={
        "emails": ListRule(max_items=3),
        "im_addresses": ListRule(max_items=3),
        "phone_numbers": ListRule(
            types={"business": 2, "home": 2, "mobile": 1},
            type_required=True,
        ),
        "physical_addresses": ListRule(
            types={"home": 1, "work": 1, "other": 1},
            type_required=True,
        ),
        "web_pages": ListRule(max_items=1),
    },
)
