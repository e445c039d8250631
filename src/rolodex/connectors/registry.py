"""Which connector serves which provider, built from an account's connection settings."""

from __future__ import annotations

from typing import Any

from rolodex.connectors.base import Connector, PermanentError


def open_connector(provider: str, settings: dict[str, Any]) -> Connector:
    if provider == "carddav":
        from rolodex.connectors.carddav.connector import CardDAVConnector

        return CardDAVConnector(
            url=settings["url"],
            username=settings.get("username"),
            password=settings.get("password"),
        )
    raise PermanentError(f"no connector for provider {provider!r} yet")
