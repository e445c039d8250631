"""The connector contract (tests/connectors/contract.py) on the Microsoft connector,
against the Graph emulator over real HTTP, in a folder under the default one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rolodex.connectors.microsoft.client import GraphClient
from rolodex.connectors.microsoft.connector import MicrosoftConnector
from tests.connectors.contract import ConnectorContract, GroupWriteContract
from tests.emulators.microsoft import GraphEmulator


class MicrosoftHarness:
    """ "Another client" is Outlook: the emulator's controls."""

    # Delta pages cannot expand the extended property holding the Rolodex id; items read
    # one by one (fetch, and changes after a cursor) carry it.
    listings_carry_rolodex_id = False

    def __init__(self, graph: GraphEmulator) -> None:
        self.graph = graph
        client = GraphClient(
            client_id=graph.client_id,
            client_secret=graph.client_secret,
            refresh_token=graph.refresh_token,
            graph_url=graph.graph_url,
            login_url=graph.login_url,
            backoff=0.01,
            max_wait=1.0,
        )
        self.connector = MicrosoftConnector(client, page_size=10)
        self.collection = graph.add_folder("Contract")
        self.connector.collections()

    def other_create(self, given_name: str) -> str:
        return self.graph.add_contact(
            {"givenName": given_name, "surname": "Other"}, self.collection
        )

    def other_update(self, remote_id: str, given_name: str) -> None:
        self.graph.edit_contact(remote_id, {"givenName": given_name})

    def other_delete(self, remote_id: str) -> None:
        self.graph.delete_contact(remote_id)

    def expired(self, cursor: str) -> str:
        self.graph.expire_delta_tokens()  # 410 SyncStateNotFound (GM §2 #11)
        return cursor

    group_prefix = "Contacts/"

    def other_group_names(self) -> set[str]:
        graph = self.graph
        with graph.lock:
            return {
                f.name
                for f in graph.folders.values()
                if f.id not in (graph.default_folder.id, self.collection)
            }


class TestMicrosoftContract(ConnectorContract, GroupWriteContract):
    @pytest.fixture
    def harness(self) -> Iterator[MicrosoftHarness]:
        with GraphEmulator() as graph:
            harness = MicrosoftHarness(graph)
            yield harness
            harness.connector.close()
