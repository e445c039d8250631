"""Domain errors: plain nouns that carry their data.

They are raised by domain, store and service code and turned into HTTP responses in exactly
one place (``rolodex.api.errors``); nothing below the API knows about status codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class RolodexError(Exception):
    """Base of every error this package raises on purpose."""


@dataclass
class NoSuchAccount(RolodexError):
    account_id: str


@dataclass
class NoSuchContact(RolodexError):
    contact_id: str


@dataclass
class NoSuchGroup(RolodexError):
    group_id: str


@dataclass
class NoSuchPicture(RolodexError):
    contact_id: str


@dataclass
class NoSuchToken(RolodexError):
    pass


@dataclass
class Unauthenticated(RolodexError):
    pass


@dataclass(frozen=True)
class Violation:
    """One broken rule of a write: which field, which rule, and a sentence for humans."""

    field: str
    rule: str
    message: str


@dataclass
class InvalidContact(RolodexError):
    violations: list[Violation] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(v.message for v in self.violations)


@dataclass
class InvalidBody(RolodexError):
    """The request body is not what the route takes (not JSON, not an object, empty...)."""

    message: str


@dataclass
class InvalidQuery(RolodexError):
    message: str


@dataclass
class InvalidHost(RolodexError):
    """A Host header that is not a host name, or not one the server answers to."""

    host: str


@dataclass
class BodyTooLarge(RolodexError):
    limit: int


@dataclass
class InvalidPicture(RolodexError):
    reason: str


@dataclass
class PictureTooLarge(RolodexError):
    size: int
    limit: int


@dataclass
class GroupsNotWritable(RolodexError):
    provider: str


@dataclass
class FixedGroup(RolodexError):
    """A group the provider keeps itself (a system group, the default folder)."""

    name: str
    reason: str


@dataclass
class DuplicateGroupName(RolodexError):
    name: str


@dataclass
class InvalidGroup(RolodexError):
    message: str


@dataclass
class InvalidAccount(RolodexError):
    message: str


@dataclass
class BadCredentials(RolodexError):
    """The provider refused the credentials an account was connected with."""

    message: str


@dataclass
class ScopeNotGranted(BadCredentials):
    """A consent that left out a scope the account needs (Google's consent screen lets the
    user untick each scope): nothing is connected, as when consent is refused."""


@dataclass
class CredentialsOutOfDate(RolodexError):
    """A write to an account whose provider refused its credentials: it could not reach
    the provider until the account is connected again."""

    account_id: str


@dataclass
class ProviderUnreachable(RolodexError):
    """The provider could not be reached or answered with an error while connecting."""

    message: str


@dataclass
class InvalidClient(RolodexError):
    """An application route was called without the application's client id and secret."""

    message: str


@dataclass
class InvalidCode(RolodexError):
    """A native-authentication code that is unknown, used, or expired."""


@dataclass
class MissingFields(RolodexError):
    fields: list[str]


@dataclass
class LeaseLost(RolodexError):
    """A sync went on past its lease, which another process has taken since: it stops
    before its next write."""

    account_id: str
    owner: str


@dataclass
class InvalidSignIn(RolodexError):
    """A hosted sign-in that cannot start (unknown client id, unregistered redirect URI,
    a bad parameter) or go on (a form that is not this sign-in's): an error page, never a
    redirect."""

    message: str


@dataclass
class SignInExpired(RolodexError):
    """A hosted sign-in that is unknown to this browser, finished already, or expired."""
