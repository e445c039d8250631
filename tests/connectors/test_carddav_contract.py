"""The connector contract (tests/connectors/contract.py) on real Radicale and Xandikos."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rolodex.connectors.carddav.connector import CardDAVConnector
from tests.carddav_servers import DavServer, vcard
from tests.connectors.contract import ConnectorContract


class CardDAVHarness:
    def __init__(self, server: DavServer, book: str) -> None:
        self.server = server
        self.connector = CardDAVConnector(server.base_url, server.username, server.password)
        self.collection = book
        self._uids: dict[str, str] = {}

    def other_create(self, given_name: str) -> str:
        uid = str(uuid.uuid4())
        href = f"{self.collection}{uid}.vcf"
        self.server.put_card(href, vcard(uid, f"{given_name} Other"))
        self._uids[href] = uid
        return href

    def other_update(self, remote_id: str, given_name: str) -> None:
        uid = self._uids.get(remote_id) or remote_id.rsplit("/", 1)[-1].removesuffix(".vcf")
        self.server.put_card(remote_id, vcard(uid, f"{given_name} Other"))

    def other_delete(self, remote_id: str) -> None:
        self.server.delete_card(remote_id)

    def expired(self, cursor: str) -> str:
        # A sync-token of the server's own shape that it never handed out: Radicale and
        # Xandikos answer it as RFC 6578's valid-sync-token precondition failure.
        return cursor[:-8] + "00000000" if cursor[-8:] != "00000000" else cursor[:-8] + "11111111"


class TestCardDAVContract(ConnectorContract):
    @pytest.fixture
    def harness(self, dav_server: DavServer, book: str) -> Iterator[CardDAVHarness]:
        harness = CardDAVHarness(dav_server, book)
        yield harness
        harness.connector.close()
