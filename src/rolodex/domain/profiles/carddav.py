"""CardDAV servers (iCloud, Fastmail, Nextcloud, Radicale, ...): what a vCard can hold.

vCard's TYPE parameter takes any label and every property repeats freely, so only the
generic bounds apply. Groups are written as CATEGORIES, the one vCard grouping that every
server stores inside the card itself (providers.md §3).
"""

from __future__ import annotations

from rolodex.domain.profiles.rules import GroupModel, Profile

PROFILE = Profile(
    provider="carddav",
    label="CardDAV",
    order=4,
    groups=GroupModel(model="categories", max_per_contact=None, nested=False),
    # A group is a name on cards (or a group card): there is no group item to create,
    # rename or delete by itself, so groups change only through the contacts' ``groups``.
    groups_writable=False,
)
