"""Which connector serves which provider, built from an account's connection settings."""

from __future__ import annotations

from typing import Any

from rolodex.connectors.base import (
    Connector,
    InvalidCredentials,
    PermanentError,
    TransientError,
)
from rolodex.domain.errors import BadCredentials, ProviderUnreachable


def open_connector(provider: str, settings: dict[str, Any]) -> Connector:
    if provider == "carddav":
        from rolodex.connectors.carddav.connector import CardDAVConnector

        return CardDAVConnector(
            url=settings["url"],
            username=settings.get("username"),
            password=settings.get("password"),
        )
    raise PermanentError(f"no connector for provider {provider!r} yet")


def verify_connection(provider: str, settings: dict[str, Any]) -> None:
    """Check that settings reach the provider and the credentials work, before an account
    is saved; failures are domain errors the API and CLI know how to show."""
    try:
        connector = open_connector(provider, settings)
        try:
            connector.verify()
        finally:
            connector.close()
    except InvalidCredentials as error:
        raise BadCredentials(error.message) from None
    except (TransientError, PermanentError) as error:
        raise ProviderUnreachable(error.message) from None
