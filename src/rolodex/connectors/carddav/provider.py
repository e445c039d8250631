"""CardDAV as a provider: what connecting an account needs, and its connector."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from rolodex.connectors.base import Connector, CredentialsChanged, Provider
from rolodex.domain.providers import FORM, NATIVE, ProviderSpec, Setting

ICLOUD_URL_ENV = "ROLODEX_ICLOUD_URL"


class _ICloud(Mapping[str, str]):
    """What "icloud" implies: CardDAV at Apple's address, or at ``ROLODEX_ICLOUD_URL``
    (read when used) where a proxy or a test server stands in for it."""

    def _values(self) -> dict[str, str]:
        return {"url": os.environ.get(ICLOUD_URL_ENV) or "https://contacts.icloud.com"}

    def __getitem__(self, key: str) -> str:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __len__(self) -> int:
        return 1


SPEC = ProviderSpec(
    name="carddav",
    title="CardDAV",
    settings=(
        Setting("url", "The server (found by RFC 6764 discovery) or an address book's URL."),
        Setting(
            "username", "The user name (the email address if not given).", defaults_to_email=True
        ),
        Setting("password", "The password (an app password for iCloud and Fastmail).", secret=True),
    ),
    poll_interval=30.0,
    sign_in=(NATIVE, FORM),
    aliases={"icloud": _ICloud()},
    sign_in_titles={"icloud": "iCloud", "carddav": "Other CardDAV server"},
)


def _open(settings: dict[str, str], _changed: CredentialsChanged) -> Connector:
    # Imported here: the registry is read by every CLI command, the protocol code only by
    # those that reach a server.
    from rolodex.connectors.carddav.connector import CardDAVConnector

    return CardDAVConnector(
        url=settings["url"], username=settings.get("username"), password=settings.get("password")
    )


PROVIDER = Provider(spec=SPEC, open=_open)
