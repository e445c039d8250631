"""Google Contacts (People API).

Phone types are Google's fixed enum, named here by their v2 names (``work`` is v2's
``business``, ``workFax`` is ``business_fax``, ``main`` is ``organization_main``; see
``rules.ALIASES``) plus the Google-only ``otherFax``, ``workMobile`` and ``workPager``. Google
Voice and custom phone types are refused on write, as Nylas v2 did (contacts API guide,
"Contacts API Limitations"). Every other list takes any type string (v2.5 behaviour for
Gmail). Groups are labels: flat, any number per contact. Names and birthdays are singletons
at Google, which the one-valued contact model already guarantees.
"""

from __future__ import annotations

from rolodex.domain.profiles.rules import GroupModel, ListRule, Profile

SYSTEM_GROUP = "it is one of Google's system groups, which only Google can change"

PROFILE = Profile(
    provider="google",
    label="Google",
    order=1,
    groups=GroupModel(
        model="labels",
        max_per_contact=None,
        nested=False,
        # Google's system groups, by the names contacts show them with (P §3): Google
        # refuses to rename or delete them.
        fixed={name: SYSTEM_GROUP for name in ("Starred", "Friends", "Family", "Coworkers")},
    ),
    lists={
        "phone_numbers": ListRule(
            types={
                "business": None,
                "home": None,
                "mobile": None,
                "pager": None,
                "business_fax": None,
                "home_fax": None,
                "organization_main": None,
                "other": None,
                "other_fax": None,
                "work_mobile": None,
                "work_pager": None,
            },
        ),
    },
)
