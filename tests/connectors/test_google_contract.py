"""The connector contract (tests/connectors/contract.py) on the Google connector, against
the People API emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rolodex.connectors.google.client import PeopleClient
from rolodex.connectors.google.connector import PEOPLE, GoogleConnector
from tests.connectors.contract import ConnectorContract, GroupWriteContract
from tests.emulators.google import GoogleEmulator, GoogleServer


class GoogleHarness:
    """ "Another client" is a person editing in Google Contacts: the emulator's controls."""

    def __init__(self, server: GoogleServer) -> None:
        self.google: GoogleEmulator = server.emulator
        refresh = self.google.grant("client-id", "client-secret")
        client = PeopleClient(
            "client-id",
            "client-secret",
            refresh,
            people_url=server.people_url,
            token_url=server.token_url,
            read_retries=0,
        )
        self.connector = GoogleConnector(client)
        self.collection = PEOPLE

    def other_create(self, given_name: str) -> str:
        return self.google.add_person(names=[{"givenName": given_name, "familyName": "Other"}])

    def other_update(self, remote_id: str, given_name: str) -> None:
        person = self.google.person(remote_id)
        name = dict(person.get("names", [{}])[0], givenName=given_name)
        self.google.edit_person(remote_id, names=[name])

    def other_delete(self, remote_id: str) -> None:
        self.google.remove_person(remote_id)

    def expired(self, cursor: str) -> str:
        self.google.expire_sync_tokens()  # as 7 days later (GM §3.1)
        return cursor

    group_prefix = ""

    def other_group_names(self) -> set[str]:
        return set(self.google.user_groups())


@pytest.fixture(scope="module")
def running() -> Iterator[GoogleServer]:
    with GoogleServer() as server:
        yield server


class TestGoogleContract(ConnectorContract, GroupWriteContract):
    @pytest.fixture
    def harness(self, running: GoogleServer) -> Iterator[GoogleHarness]:
        running.reset()
        harness = GoogleHarness(running)
        yield harness
        harness.connector.close()
