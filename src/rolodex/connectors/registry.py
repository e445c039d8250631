"""The providers Rolodex connects to, found by their packages.

Each package under ``rolodex.connectors`` with a ``provider`` module defining ``PROVIDER``
(a ``rolodex.connectors.base.Provider``) is a provider; adding one is adding its package.
The composition roots (``rolodex.api.app``, the CLI) hand what is here to the services:
``catalog()`` for what connecting needs, ``verify_connection`` and ``open_connector``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any

import rolodex.connectors
from rolodex.connectors.base import (
    Connector,
    CredentialsChanged,
    InvalidCredentials,
    PermanentError,
    Provider,
    TransientError,
    credentials_ignored,
)
from rolodex.domain.errors import BadCredentials, ProviderUnreachable
from rolodex.domain.profiles import PROVIDERS
from rolodex.domain.providers import ProviderCatalog
from rolodex.domain.signin import OAuthSignIn


@cache
def providers() -> dict[str, Provider]:
    found: dict[str, Provider] = {}
    for info in pkgutil.iter_modules(rolodex.connectors.__path__):
        if not info.ispkg:
            continue
        try:
            module = importlib.import_module(f"{rolodex.connectors.__name__}.{info.name}.provider")
        except ModuleNotFoundError as error:
            if error.name == f"{rolodex.connectors.__name__}.{info.name}.provider":
                continue  # a package of shared code, not a provider
            raise
        provider = module.PROVIDER
        if not isinstance(provider, Provider) or provider.spec.name != info.name:
            raise ValueError(f"{module.__name__} must define PROVIDER for {info.name!r}")
        if info.name not in PROVIDERS:
            # Writes are checked against the provider's rules: it needs its profile
            # (rolodex.domain.profiles.<name>) as well as its connector.
            raise ValueError(f"provider {info.name!r} has no profile in rolodex.domain.profiles")
        found[info.name] = provider
    return found


def oauth_sign_ins(config: Mapping[str, Any]) -> dict[str, OAuthSignIn]:
    """The providers hosted sign-in can send users to: those whose OAuth client is
    configured (``config``: the server's settings by name)."""
    found: dict[str, OAuthSignIn] = {}
    for name, provider in providers().items():
        sign_in = provider.oauth(config) if provider.oauth is not None else None
        if sign_in is not None:
            found[name] = sign_in
    return found


def catalog() -> ProviderCatalog:
    return ProviderCatalog(p.spec for p in providers().values())


def provider(name: str) -> Provider:
    found = providers().get(name)
    if found is None:
        raise PermanentError(f"no connector for provider {name!r}")
    return found


def open_connector(
    name: str, settings: dict[str, str], changed: CredentialsChanged = credentials_ignored
) -> Connector:
    return provider(name).open(settings, changed)


def verify_connection(name: str, settings: dict[str, str]) -> None:
    """Check that settings reach the provider and the credentials work, before an account
    is saved; failures are domain errors the API and CLI know how to show."""
    try:
        provider(name).verify(settings)
    except InvalidCredentials as error:
        raise BadCredentials(error.message) from None
    except (TransientError, PermanentError) as error:
        raise ProviderUnreachable(error.message) from None
