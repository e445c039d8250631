"""Rolodex's own address book: anything the wire format can carry, within the generic bounds.

Local contacts are exported as vCard, which takes any type label, so no type is refused.
"""

from __future__ import annotations

from rolodex.domain.profiles.rules import GroupModel, Profile

PROFILE = Profile(
    provider="local",
    label="Rolodex",
    order=0,
    groups=GroupModel(model="labels", max_per_contact=None, nested=False),
)
