"""Provider profiles: what each provider's address book can hold, as data.

One profile per provider; validation of every write and ``GET /account/capabilities`` both
read the same profile, so there is no second copy of a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rolodex.domain.contact import LIST_FIELDS, SCALAR_FIELDS, ContactFields
from rolodex.domain.errors import Violation

PROVIDERS: tuple[str, ...] = ("local", "google", "microsoft", "exchange", "carddav")

MAX_NAME_LENGTH = 1000
MAX_NOTES_LENGTH = 10_000
MAX_LIST_ITEMS = 100
MAX_ITEM_LENGTH = 1000


@dataclass(frozen=True)
class Profile:
    provider: str
    label: str
    groups_writable: bool = True
    max_groups_per_contact: int | None = None

    def violations(self, fields: ContactFields, group_count: int = 0) -> list[Violation]:
        found: list[Violation] = []
        for name in SCALAR_FIELDS:
            value = getattr(fields, name)
            limit = MAX_NOTES_LENGTH if name == "notes" else MAX_NAME_LENGTH
            if value is not None and len(value) > limit:
                found.append(
                    Violation(
                        name,
                        "length",
                        f"{name} may be at most {limit} characters; got {len(value)}",
                    )
                )
        for name in LIST_FIELDS:
            items = getattr(fields, name)
            if len(items) > MAX_LIST_ITEMS:
                found.append(
                    Violation(
                        name,
                        "count",
                        f"{name} may hold at most {MAX_LIST_ITEMS} items; got {len(items)}",
                    )
                )
            for index, item in enumerate(items):
                for key, value in _item_strings(item):
                    if value is not None and len(value) > MAX_ITEM_LENGTH:
                        found.append(
                            Violation(
                                f"{name}[{index}].{key}",
                                "length",
                                f"{name}[{index}].{key} may be at most {MAX_ITEM_LENGTH} "
                                f"characters; got {len(value)}",
                            )
                        )
        return found

    def capabilities(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "groups": {
                "writable": self.groups_writable,
                "max_per_contact": self.max_groups_per_contact,
            },
            "limits": {
                "max_name_length": MAX_NAME_LENGTH,
                "max_notes_length": MAX_NOTES_LENGTH,
                "max_list_items": MAX_LIST_ITEMS,
            },
        }


def _item_strings(item: object) -> list[tuple[str, str | None]]:
    slots: tuple[str, ...] = getattr(item, "__slots__", ())
    return [(s, getattr(item, s)) for s in slots if isinstance(getattr(item, s), str | None)]


_PROFILES = {
    "local": Profile("local", "Rolodex"),
    "google": Profile("google", "Google"),
    "microsoft": Profile("microsoft", "Microsoft 365", max_groups_per_contact=1),
    "exchange": Profile("exchange", "Exchange", max_groups_per_contact=1),
    "carddav": Profile("carddav", "CardDAV"),
}


def profile_for(provider: str) -> Profile:
    return _PROFILES[provider]
