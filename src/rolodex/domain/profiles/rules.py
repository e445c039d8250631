"""The rule machinery behind provider profiles.

A provider module states *what* its address book can hold as plain data (a ``Profile`` built
from ``ListRule`` and ``GroupModel`` values); this module is the only code that interprets
that data, both to find the violations of a write and to describe the rules in
``GET /account/capabilities``. Keeping one interpreter for both is what stops the served
capabilities from drifting away from what writes actually enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from rolodex.domain.contact import (
    LIST_FIELDS,
    SCALAR_FIELDS,
    WRITABLE_FIELDS,
    ContactFields,
    ListItem,
)
from rolodex.domain.errors import Violation

# Bounds every provider shares. They protect Rolodex itself (index rows, stored documents,
# request cost) rather than mirror a provider, so every profile applies them; a provider's
# own list limits (ListRule.max_items) can only be lower.
MAX_SCALAR_LENGTH = 1000
MAX_NOTES_LENGTH = 10_000
MAX_LIST_ITEMS = 100
MAX_ITEM_LENGTH = 1000

GroupModelName = Literal["labels", "folders", "categories"]

# (singular, plural) of each typed list, for messages a person reads.
_NOUNS: dict[str, tuple[str, str]] = {
    "emails": ("email address", "email addresses"),
    "im_addresses": ("IM address", "IM addresses"),
    "phone_numbers": ("phone number", "phone numbers"),
    "physical_addresses": ("address", "addresses"),
    "web_pages": ("web page", "web pages"),
}
_GROUP_NOUNS: dict[str, tuple[str, str]] = {
    "labels": ("label", "labels"),
    "folders": ("folder", "folders"),
    "categories": ("category", "categories"),
}

# Other spellings clients send for the v2 type names: the providers' own names (Google's
# "work" phone is v2's "business"), vCard's ("cell"), and the v2 docs' own variants. Only
# what ``type_key`` cannot already reconcile is listed; keyed by list, because the same word
# means different things in different lists ("work" is a phone's "business" but an
# address's own "work").
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "emails": {"personal": ("home",)},
    "phone_numbers": {
        "business": ("work",),
        "mobile": ("cell",),
        "business_fax": ("work_fax",),
        "organization_main": ("main", "company_main"),
        # The v2 spec's machine enum spells it "page".
        "pager": ("page",),
    },
    "physical_addresses": {"work": ("business",)},
}


def type_key(kind: str) -> str:
    """Fold a type to what it means, not how it was typed.

    "Other Fax", "other_fax", "otherFax" and "other-fax" are one type to every provider, and
    so are "tty/tdd" and "ttytdd"; dropping case and everything but letters and digits makes
    them compare equal without a table of every spelling.
    """
    return "".join(ch for ch in kind.casefold() if ch.isalnum())


@dataclass(frozen=True)
class ListRule:
    """What a provider accepts in one typed list (emails, phone_numbers, ...).

    ``types`` is ``None`` when any type string is stored as sent (vCard, Google emails);
    otherwise it maps each accepted v2 type name to how many values of that type one contact
    may hold (``None``: no limit beyond ``max_items``), and every other type is refused.
    """

    max_items: int | None = None
    types: Mapping[str, int | None] | None = None
    type_required: bool = False


@dataclass(frozen=True)
class GroupModel:
    model: GroupModelName
    max_per_contact: int | None
    nested: bool
    # Groups the provider itself keeps (Google's system groups, the mailbox's default
    # folder), by path, with why: they cannot be renamed or deleted through the API.
    fixed: Mapping[str, str] = field(default_factory=dict)
    # Where every contact must be in one group (a folder), the group that takes the
    # contacts of a group that is deleted, by path; None: they are simply left without it.
    default: str | None = None

    def why_fixed(self, path: str) -> str | None:
        return self.fixed.get(path)


@dataclass(frozen=True)
class Profile:
    """What one provider's address book can hold, as data; see the module docstring."""

    provider: str
    label: str
    # Position in ``PROVIDERS``; lists of providers (CLI, docs) keep one stable order.
    order: int
    groups: GroupModel
    lists: Mapping[str, ListRule] = field(default_factory=dict)
    unsupported: frozenset[str] = frozenset()
    # Whether groups can be created, renamed and deleted through the API; for a connected
    # account the write then goes to the provider (the outbox), like a contact's.
    groups_writable: bool = True
    # Whether a contact's picture can be removed once set (Microsoft Graph has no way to
    # delete a contact photo: a removal is refused rather than left undone there).
    pictures_deletable: bool = True

    def __post_init__(self) -> None:
        # A typo in a profile module must fail at import, not silently skip a rule.
        unknown = (set(self.lists) - set(LIST_FIELDS)) | (self.unsupported - set(WRITABLE_FIELDS))
        if unknown:
            raise ValueError(f"profile {self.provider!r} names unknown fields {sorted(unknown)}")
        self._spellings  # noqa: B018 - builds and checks the spelling tables at import

    @cached_property
    def _spellings(self) -> dict[str, dict[str, str]]:
        """Per enum-typed list: every accepted spelling's ``type_key`` -> its v2 type name."""
        tables: dict[str, dict[str, str]] = {}
        for name, rule in self.lists.items():
            if rule.types is None:
                continue
            table: dict[str, str] = {}
            aliases = ALIASES.get(name, {})
            for kind in rule.types:
                for spelling in (kind, *aliases.get(kind, ())):
                    key = type_key(spelling)
                    if not key or table.setdefault(key, kind) != kind:
                        raise ValueError(
                            f"profile {self.provider!r}: type {spelling!r} in {name} is empty "
                            f"or means two types"
                        )
            tables[name] = table
        return tables

    @property
    def max_groups_per_contact(self) -> int | None:
        return self.groups.max_per_contact

    def rule(self, name: str) -> ListRule:
        return self.lists.get(name, ListRule())

    def max_items(self, name: str) -> int:
        rule = self.rule(name)
        limits = [MAX_LIST_ITEMS]
        if rule.max_items is not None:
            limits.append(rule.max_items)
        caps = list((rule.types or {}).values())
        if rule.type_required and caps and None not in caps:
            # Fixed slots (Exchange's phone keys) bound the list even where no total is
            # stated; derived so that capabilities report the true ceiling.
            limits.append(sum(cap for cap in caps if cap is not None))
        return min(limits)

    def max_length(self, name: str) -> int:
        return MAX_NOTES_LENGTH if name == "notes" else MAX_SCALAR_LENGTH

    def violations(self, fields: ContactFields, group_count: int = 0) -> list[Violation]:
        """Every rule this write breaks, in field order; empty when the provider accepts it."""
        found: list[Violation] = []
        for name in SCALAR_FIELDS:
            found.extend(self._scalar_violations(name, getattr(fields, name)))
        if "birthday" in self.unsupported and fields.birthday is not None:
            found.append(self._unsupported("birthday"))
        for name in LIST_FIELDS:
            found.extend(self._list_violations(name, getattr(fields, name)))
        limit = self.groups.max_per_contact
        if limit is not None and group_count > limit:
            singular, plural = _GROUP_NOUNS[self.groups.model]
            found.append(
                Violation(
                    "groups",
                    "max_groups",
                    f"{self.label} contacts can be in at most {limit} "
                    f"{singular if limit == 1 else plural}; got {group_count}",
                )
            )
        return found

    def picture_delete_violations(self) -> list[Violation]:
        """What removing a contact's picture breaks (a list, like ``violations``)."""
        if self.pictures_deletable:
            return []
        return [
            Violation(
                "picture",
                "picture_not_deletable",
                f"{self.label} contacts cannot lose their picture once set (the provider has "
                "no way to delete a contact photo); set another picture instead",
            )
        ]

    def _unsupported(self, name: str) -> Violation:
        return Violation(name, "unsupported_field", f"{self.label} contacts have no {name} field")

    def _too_long(self, where: str, value: str, limit: int) -> Violation:
        return Violation(
            where,
            "max_length",
            f"{self.label} contacts accept at most {limit} characters in {where}; got {len(value)}",
        )

    def _scalar_violations(self, name: str, value: str | None) -> list[Violation]:
        if value is None:
            return []
        if name in self.unsupported:
            return [self._unsupported(name)]
        limit = self.max_length(name)
        return [self._too_long(name, value, limit)] if len(value) > limit else []

    def _list_violations(self, name: str, items: tuple[ListItem, ...]) -> list[Violation]:
        if not items:
            return []
        if name in self.unsupported:
            return [self._unsupported(name)]
        rule = self.rule(name)
        singular, plural = _NOUNS[name]
        found: list[Violation] = []
        limit = self.max_items(name)
        if len(items) > limit:
            found.append(
                Violation(
                    name,
                    "max_items",
                    f"{self.label} contacts accept at most {limit} "
                    f"{singular if limit == 1 else plural}; got {len(items)}",
                )
            )
        canonical = self._spellings.get(name)
        counts: dict[str, int] = {}
        for index, item in enumerate(items):
            where = f"{name}[{index}].type"
            kind = item.type
            if kind is None or not type_key(kind):
                if rule.type_required:
                    found.append(
                        Violation(where, "type_required", f"{self.label} {plural} need a type")
                    )
                continue
            if canonical is None:
                continue
            known = canonical.get(type_key(kind))
            if known is None:
                found.append(
                    Violation(
                        where,
                        "type_not_allowed",
                        f"{self.label} does not accept {plural} of type '{kind}'",
                    )
                )
                continue
            counts[known] = counts.get(known, 0) + 1
        for kind, count in counts.items():
            per_type = (rule.types or {}).get(kind)
            if per_type is not None and count > per_type:
                found.append(
                    Violation(
                        name,
                        "max_per_type",
                        f"{self.label} contacts accept at most {per_type} "
                        f"{singular if per_type == 1 else plural} of type '{kind}'; got {count}",
                    )
                )
        for index, item in enumerate(items):
            for slot in item.__slots__:
                value = getattr(item, slot)
                if isinstance(value, str) and len(value) > MAX_ITEM_LENGTH:
                    found.append(self._too_long(f"{name}[{index}].{slot}", value, MAX_ITEM_LENGTH))
        return found

    def capabilities(self) -> dict[str, Any]:
        """The rules as JSON, read from the same data ``violations`` enforces."""
        supported = [f for f in WRITABLE_FIELDS if f not in self.unsupported]
        lists: dict[str, Any] = {}
        for name in LIST_FIELDS:
            if name in self.unsupported:
                continue
            rule = self.rule(name)
            allowed: dict[str, Any] | None = None
            if rule.types is not None:
                aliases = ALIASES.get(name, {})
                allowed = {
                    kind: {"max": limit, "aliases": list(aliases.get(kind, ()))}
                    for kind, limit in rule.types.items()
                }
            lists[name] = {
                "max_items": self.max_items(name),
                "max_value_length": MAX_ITEM_LENGTH,
                "types": {
                    "free": rule.types is None,
                    "null_allowed": not rule.type_required,
                    "allowed": allowed,
                },
            }
        return {
            "provider": self.provider,
            "label": self.label,
            "fields": {
                "supported": supported,
                "unsupported": [f for f in WRITABLE_FIELDS if f in self.unsupported],
            },
            "max_length": {f: self.max_length(f) for f in SCALAR_FIELDS if f in supported},
            "lists": lists,
            "groups": {
                "model": self.groups.model,
                "max_per_contact": self.groups.max_per_contact,
                "nested": self.groups.nested,
                "writable": self.groups_writable,
                "fixed": sorted(self.groups.fixed) if self.groups_writable else [],
            },
            "pictures": {"deletable": self.pictures_deletable},
        }
