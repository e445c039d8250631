"""What each provider needs to connect an account, as data.

A ``ProviderSpec`` names a provider's connection settings (which are secret, which are
required), the names v2 and Rolodex accept for it, its default poll interval and how an
account signs in. Each connector package declares one (``rolodex.connectors.registry`` finds
them); the CLI's flags, ``/connect/authorize`` and ``GET /account/capabilities`` are derived
from them, so no layer switches on provider names. Pure data and validation, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rolodex.domain.errors import InvalidAccount

# How an account of a provider can sign in: settings given directly (v2's native
# authentication and the CLI), an OAuth consent screen (hosted sign-in), or a form of its
# settings on the hosted sign-in page (a CardDAV password).
NATIVE = "native"
OAUTH = "oauth"
FORM = "form"


@dataclass(frozen=True)
class Setting:
    """One connection setting."""

    name: str
    help: str
    secret: bool = False
    required: bool = True
    # Filled from the account's email address when not given (a CardDAV user name).
    defaults_to_email: bool = False
    default: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # as stored on the account; the name of its profile too
    title: str  # for people: "Google Contacts", "CardDAV"
    settings: tuple[Setting, ...]
    poll_interval: float
    sign_in: tuple[str, ...] = (NATIVE,)
    # Other names accepted for the provider (v2's names, well-known servers), each with the
    # settings it implies: "icloud" is CardDAV at Apple's address.
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # What the hosted sign-in page calls the provider and its aliases, where that differs
    # from ``title`` ("iCloud" for the alias icloud).
    sign_in_titles: Mapping[str, str] = field(default_factory=dict)

    def sign_in_title(self, name: str) -> str:
        return self.sign_in_titles.get(name, self.title)

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.settings if s.secret)

    def normalize(
        self, given: Mapping[str, Any], email: str, *, alias: str | None = None
    ) -> dict[str, str]:
        """The settings to store: required ones present, all strings, defaults filled,
        unknown names dropped. ``InvalidAccount`` names every missing or wrong setting."""
        preset = dict(self.aliases.get(alias or "", {}))
        values: dict[str, str] = {}
        missing: list[str] = []
        wrong: list[str] = []
        for setting in self.settings:
            value = preset.get(setting.name, given.get(setting.name))
            if value is None or value == "":
                if setting.defaults_to_email:
                    value = email
                elif setting.default is not None:
                    value = setting.default
            if value is None or value == "":
                if setting.required:
                    missing.append(setting.name)
                continue
            if not isinstance(value, str):
                wrong.append(setting.name)
                continue
            values[setting.name] = value
        if missing:
            raise InvalidAccount(
                f"{alias or self.name} accounts need the settings: {', '.join(missing)}"
            )
        if wrong:
            raise InvalidAccount(f"settings must be strings: {', '.join(wrong)}")
        return values


class ProviderCatalog:
    """The providers accounts can be connected to, found by any of their names."""

    def __init__(self, specs: Iterable[ProviderSpec]) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._names: dict[str, tuple[ProviderSpec, str | None]] = {}
        for spec in self.specs.values():
            self._names[spec.name] = (spec, None)
            for alias in spec.aliases:
                self._names[alias] = (spec, alias)

    @property
    def names(self) -> tuple[str, ...]:
        """Every accepted name, the providers' own first."""
        return tuple(dict.fromkeys((*self.specs, *self._names)))

    def get(self, name: str) -> ProviderSpec | None:
        return self.specs.get(name)

    def resolve(self, name: Any) -> tuple[ProviderSpec, str | None]:
        """The provider ``name`` means, and the alias it was named by (None: its own name)."""
        found = self._names.get(name) if isinstance(name, str) else None
        if found is None:
            raise InvalidAccount(
                f"provider {name!r} cannot be connected; choose one of {', '.join(self.names)}"
            )
        return found
