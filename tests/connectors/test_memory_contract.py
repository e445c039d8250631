"""The in-memory connector that the convergence state machine trusts keeps the same
contract as the real connectors, in both of its modes."""

from __future__ import annotations

import pytest

from rolodex.domain.contact import ContactFields
from tests.connectors.contract import ConnectorContract
from tests.sync.memory_connector import MemoryConnector


class MemoryHarness:
    def __init__(self, assigns_ids: bool) -> None:
        self.connector = MemoryConnector(assigns_ids=assigns_ids)
        self.memory = self.connector
        self.collection = "contacts"

    def other_create(self, given_name: str) -> str:
        return self.memory.remote_create(ContactFields(given_name=given_name)).remote_id

    def other_update(self, remote_id: str, given_name: str) -> None:
        self.memory.remote_update(remote_id, given_name=given_name)

    def other_delete(self, remote_id: str) -> None:
        self.memory.remote_delete(remote_id)

    def expired(self, cursor: str) -> str:
        self.memory.expire_cursors()
        return cursor


class TestMemoryConnectorContract(ConnectorContract):
    @pytest.fixture(params=[False, True], ids=["carddav-ids", "provider-ids"])
    def harness(self, request: pytest.FixtureRequest) -> MemoryHarness:
        return MemoryHarness(assigns_ids=request.param)
