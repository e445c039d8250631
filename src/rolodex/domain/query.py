"""The list query of ``GET /contacts``: strict parsing of its parameters, as v2 did it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rolodex.domain.errors import InvalidQuery
from rolodex.domain.normalize import email_term, phone_query_term, text_term

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# OFFSET is a signed 64-bit integer in both databases; past this, binding it is an error
# (a 500), and no account holds that many contacts anyway.
MAX_OFFSET = 2**63 - 1

# Filter parameter -> the term kind it looks up in the contact index.
TERM_FILTERS: dict[str, str] = {
    "email": "email",
    "phone_number": "phone",
    "street_address": "street_address",
    "postal_code": "postal_code",
    "state": "state",
    "country": "country",
}
PARAMETERS = frozenset({"limit", "offset", "view", *TERM_FILTERS, "source", "group", "recurse"})
VIEWS = frozenset({"count", "ids"})
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ContactFilter:
    """Exact-match filters, already normalised to index terms; all must hold."""

    terms: tuple[tuple[str, str], ...] = ()
    source: str | None = None
    group_id: str | None = None
    recurse: bool = False
    # Hashed once: a filter is part of the page cursors' keys, looked up several times in
    # every list request (the dataclass's own hash rebuilds and hashes a tuple each time).
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        key = (self.terms, self.source, self.group_id, self.recurse)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_empty(self) -> bool:
        return not self.terms and self.source is None and self.group_id is None


@dataclass(frozen=True)
class ListQuery:
    filter: ContactFilter = field(default_factory=ContactFilter)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    view: str | None = None


def parse_list_query(params: Mapping[str, Sequence[str]]) -> ListQuery:
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise InvalidQuery(f"Unexpected query parameters: {', '.join(unknown)}")

    def one(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidQuery(f"Parameter {name} may be given only once")
        if "\x00" in values[0]:
            # Nothing stored can contain NUL (PostgreSQL text refuses it outright).
            raise InvalidQuery(f"Parameter {name} may not contain NUL characters")
        return values[0]

    limit = _non_negative_int(one("limit"), "Limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise InvalidQuery(f"Cannot request more than {MAX_LIMIT} resources at once.")
    offset = _non_negative_int(one("offset"), "Offset", 0)
    if offset > MAX_OFFSET:
        raise InvalidQuery(f"Offset parameter must be at most {MAX_OFFSET}.")
    view = one("view") or None
    if view is not None and view not in VIEWS:
        raise InvalidQuery(f"Unknown view {view!r}; use view=count or view=ids")

    terms: list[tuple[str, str]] = []
    for name, kind in TERM_FILTERS.items():
        value = one(name)
        if value is None:
            continue
        if kind == "email":
            term = email_term(value)
        elif kind == "phone":
            term = phone_query_term(value)
            if not term:
                raise InvalidQuery("phone_number must contain digits")
        else:
            term = text_term(value)
        terms.append((kind, term))
    recurse_text = one("recurse")
    recurse = False
    if recurse_text is not None:
        if recurse_text.lower() not in ("true", "false", "1", "0", ""):
            raise InvalidQuery("recurse must be true or false")
        recurse = recurse_text.lower() in ("true", "1")
    contact_filter = ContactFilter(
        terms=tuple(terms),
        source=one("source") or None,
        group_id=one("group") or None,
        recurse=recurse,
    )
    return ListQuery(filter=contact_filter, limit=limit, offset=offset, view=view)


def _non_negative_int(text: str | None, label: str, default: int) -> int:
    if text is None or text == "":
        return default
    # Plain ASCII digits only: int() would also take "1_000", " 5 " and non-ASCII digits,
    # which no client means as a page size.
    if not _INTEGER.fullmatch(text):
        raise InvalidQuery(f"{label} parameter must be an integer.")
    digits = text.lstrip("+-").lstrip("0")
    if text.startswith("-") and digits:
        raise InvalidQuery(f"{label} parameter must be nonnegative.")
    if len(digits) > len(str(MAX_OFFSET)):
        # Past every bound the callers check; int() would refuse (or take long over)
        # thousands of digits.
        return MAX_OFFSET + 1
    return int(digits or "0")
