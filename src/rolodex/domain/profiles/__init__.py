"""Provider profiles: what each provider's address book can hold, as data.

Each provider is one module in this package that defines ``PROFILE``; it is found here
without being listed, so adding a provider means adding its module and nothing else.
Writes are validated with ``Profile.violations`` and ``GET /account/capabilities`` serves
``Profile.capabilities``, both read from that one ``PROFILE``. Profiles are consulted only on
writes: data already stored at a provider is read back whatever it holds.
"""

from __future__ import annotations

import importlib
import pkgutil

from rolodex.domain.profiles.rules import (
    MAX_ITEM_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NOTES_LENGTH,
    MAX_SCALAR_LENGTH,
    GroupModel,
    ListRule,
    Profile,
    type_key,
)

__all__ = [
    "MAX_ITEM_LENGTH",
    "MAX_LIST_ITEMS",
    "MAX_NOTES_LENGTH",
    "MAX_SCALAR_LENGTH",
    "PROVIDERS",
    "GroupModel",
    "ListRule",
    "Profile",
    "profile_for",
    "type_key",
]


def _discover() -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        profile = getattr(module, "PROFILE", None)
        if not isinstance(profile, Profile):
            continue
        if profile.provider != info.name:
            # The module name is how a reader finds a provider's rules; keep them in step.
            raise ValueError(f"{module.__name__} defines the profile of {profile.provider!r}")
        found[profile.provider] = profile
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


_PROFILES = _discover()
PROVIDERS: tuple[str, ...] = tuple(_PROFILES)


def profile_for(provider: str) -> Profile:
    """The profile of ``provider``; ``KeyError`` for a provider Rolodex does not know."""
    return _PROFILES[provider]
