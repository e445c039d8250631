"""Group writes of a Google account, end to end: the API's group routes (the service), the
outbox, the engine and the connector, against the People API emulator over real HTTP."""

# ruff: noqa: F811 - the fixtures come from the provider's sync tests

from __future__ import annotations

import os
from typing import Any

import httpx
import orjson
import pytest

from rolodex.cli.sync import make_runner
from rolodex.domain.contact import Group
from rolodex.domain.errors import FixedGroup
from rolodex.sync.runner import SyncFailed
from tests.conftest import settings_for_tests
from tests.emulators.google import GoogleEmulator
from tests.sync.test_google_sync import (  # noqa: F401 - fixtures
    Synced,
    _due_now,
    running,
    synced,
)


def _groups(synced: Synced) -> dict[str, Group]:
    return {g.name: g for g in synced.svc.groups.list(synced.account)}


def _members(person: dict[str, Any]) -> set[str]:
    return {
        m["contactGroupMembership"]["contactGroupResourceName"]
        for m in person.get("memberships") or ()
        if m.get("contactGroupMembership")
    }


def _in(resource_name: str) -> list[dict[str, Any]]:
    return [{"contactGroupMembership": {"contactGroupResourceName": resource_name}}]


def _outbox(synced: Synced) -> int:
    with synced.svc.accounts.store.read() as tx:
        return tx.outbox.count(synced.account.id)


def test_a_group_made_through_the_api_is_made_at_google_once_and_comes_back_quietly(
    synced: Synced,
) -> None:
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    # A membership set before the group reached Google follows it there.
    synced.svc.contacts.create(synced.account, {"given_name": "Ann", "group": group.id})
    synced.sync()
    made = synced.google.user_groups()
    assert list(made) == ["Team"]
    assert len(synced.google.calls("/v1/contactGroups", method="POST")) == 1
    assert made["Team"]["resourceName"] in _members(synced.person_named("Ann"))
    before = synced.log_size()
    synced.sync()
    synced.sync()
    assert synced.log_size() == before  # no spurious change
    assert list(_groups(synced)) == ["Team"]  # no duplicate
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [group.id]  # type: ignore[index]
    assert _outbox(synced) == 0


def test_a_create_whose_reply_was_lost_is_not_made_twice(synced: Synced) -> None:
    synced.sync()
    synced.google.fail(503, method="POST", path="/v1/contactGroups", after=True)
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    synced.sync()  # made at Google; the reply lost: the write waits
    assert list(synced.google.user_groups()) == ["Team"]
    assert _outbox(synced) == 1
    _due_now(synced)
    synced.sync()  # the retry's 409 says it is there: that one is linked
    assert list(synced.google.user_groups()) == ["Team"]
    assert _outbox(synced) == 0
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    synced.sync()
    assert list(synced.google.user_groups()) == ["Crew"]


def test_a_rename_reaches_google_and_its_members_keep_the_group(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    renamed = synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    assert renamed.id == group.id and renamed.path == "Crew"
    synced.sync()
    assert synced.google.user_groups()["Crew"]["resourceName"] == team
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before
    assert list(_groups(synced)) == ["Crew"]
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Crew"]  # type: ignore[index]


def test_a_stale_etag_is_read_again_and_the_rename_retried(synced: Synced) -> None:
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    synced.sync()
    team = synced.google.user_groups()["Team"]
    # Another client writes the group's client data: its etag changes.
    synced.google.edit_group(team["resourceName"], clientData=[{"key": "app", "value": "1"}])
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    synced.google.clear_log()
    synced.sync()
    crew = synced.google.user_groups()["Crew"]
    assert crew["resourceName"] == team["resourceName"]
    assert crew["clientData"] == [{"key": "app", "value": "1"}]  # what it did not touch stays
    puts = synced.google.calls(team["resourceName"], method="PUT")
    assert [p.status for p in puts] == [400, 200]
    assert _outbox(synced) == 0


def test_a_delete_keeps_the_contacts(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    synced.svc.groups.delete(synced.account, _groups(synced)["Team"].id)
    synced.sync()
    assert synced.google.user_groups() == {}
    (call,) = synced.google.calls(team, method="DELETE")
    assert call.param("deleteContacts") == "false"
    assert team not in _members(synced.person_named("Ann"))
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before
    assert synced.by_name("Ann")["groups"] == []
    assert _groups(synced) == {}


def test_a_group_made_and_deleted_before_a_sync_never_reaches_google(synced: Synced) -> None:
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Brief"})
    synced.svc.groups.delete(synced.account, group.id)
    synced.sync()
    assert synced.google.user_groups() == {}
    assert synced.google.calls("/v1/contactGroups", method="POST") == []
    assert _outbox(synced) == 0


def test_429_backs_off_and_resumes(synced: Synced) -> None:
    synced.sync()
    synced.google.fail(429, method="POST", path="/v1/contactGroups", retry_after="120")
    synced.svc.groups.create(synced.account, {"name": "Later"})
    synced.sync()
    assert synced.google.user_groups() == {}
    state = synced.state()
    assert state.last_error and "429" in state.last_error
    _due_now(synced)
    synced.sync()
    assert list(synced.google.user_groups()) == ["Later"]


def test_a_refused_rename_stays_visible(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    synced.google.add_group("Crew")  # made at Google since: the name is taken there
    synced.svc.groups.rename(synced.account, _groups(synced)["Team"].id, {"name": "Crew"})
    synced.sync()
    state = synced.state()
    assert state.last_error and "refused" in state.last_error and "409" in state.last_error
    assert _outbox(synced) == 1  # kept, not dropped
    assert sorted(synced.google.user_groups()) == ["Crew", "Team"]


def test_system_groups_cannot_be_changed(synced: Synced) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in("contactGroups/starred"))
    synced.sync()
    starred = _groups(synced)["Starred"]
    with pytest.raises(FixedGroup) as raised:
        synced.svc.groups.rename(synced.account, starred.id, {"name": "Stars"})
    assert "system groups" in raised.value.reason
    with pytest.raises(FixedGroup):
        synced.svc.groups.delete(synced.account, starred.id)
    assert _outbox(synced) == 0
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Starred"]  # type: ignore[index]


def test_a_contact_joins_a_group_made_through_the_api_later(synced: Synced) -> None:
    synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.sync()
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    synced.sync()
    ann = synced.by_name("Ann")
    synced.svc.contacts.update(synced.account, str(ann["id"]), {"group": group.id})
    synced.sync()
    team = synced.google.user_groups()["Team"]["resourceName"]
    assert team in _members(synced.person_named("Ann"))
    assert orjson.loads(orjson.dumps(synced.by_name("Ann")["groups"]))[0]["id"] == group.id


def test_a_pull_while_a_rename_waits_leaves_the_rename_alone(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    ann = synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    synced.google.fail(429, method="PUT", path="contactGroups/", retry_after="120")
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    synced.google.edit_person(ann, nicknames=[{"value": "Annie"}])
    synced.sync()  # the rename waits; Ann comes back, still in "Team" at Google
    assert synced.by_name("Ann")["nickname"] == "Annie"
    assert list(_groups(synced)) == ["Crew"]  # not a second group
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [group.id]  # type: ignore[index]
    _due_now(synced)
    synced.sync()
    assert list(synced.google.user_groups()) == ["Crew"]
    assert list(_groups(synced)) == ["Crew"]


def test_a_group_whose_name_holds_a_slash_is_renamed_not_made_again(synced: Synced) -> None:
    team = synced.google.add_group("Sales/East")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Sales-East"]  # "/" separates a path's levels here
    synced.svc.groups.rename(synced.account, group.id, {"name": "East"})
    synced.sync()
    assert synced.google.user_groups()["East"]["resourceName"] == team
    assert list(synced.google.user_groups()) == ["East"]


# --- Groups changed in Google Contacts (another client, over the People API) ---------------


def google_contacts(google: GoogleEmulator) -> httpx.Client:
    """Another client of the same user (Google Contacts itself, as far as the People API
    shows it), with its own grant, over HTTP: what it writes is a change Rolodex did not
    make."""
    refresh = google.grant("contacts-app", "contacts-secret")
    answer = httpx.post(
        os.environ["ROLODEX_GOOGLE_TOKEN_URL"],
        data={
            "grant_type": "refresh_token",
            "client_id": "contacts-app",
            "client_secret": "contacts-secret",
            "refresh_token": refresh,
        },
    )
    answer.raise_for_status()
    return httpx.Client(
        base_url=os.environ["ROLODEX_GOOGLE_PEOPLE_URL"] + "/v1/",
        headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
    )


def rename_at_google(google: GoogleEmulator, resource_name: str, name: str) -> None:
    # contactGroups.update: PUT /v1/{contactGroup.resourceName} (GM §3.1).
    with google_contacts(google) as client:
        current = client.get(resource_name).json()
        answer = client.put(
            resource_name,
            json={
                "contactGroup": {
                    "resourceName": resource_name,
                    "etag": current["etag"],
                    "name": name,
                }
            },
        )
        answer.raise_for_status()


def delete_at_google(google: GoogleEmulator, resource_name: str) -> None:
    # contactGroups.delete, its contacts kept (deleteContacts defaults to false).
    with google_contacts(google) as client:
        client.delete(resource_name).raise_for_status()


def _deltas(synced: Synced, cursor: str) -> list[tuple[str, str, str]]:
    types = frozenset({"contact", "contact_group"})
    page = synced.svc.changes.since(synced.account, cursor, types)
    return [(d.object_type, d.object_id, d.event) for d in page.deltas]


def test_a_group_renamed_at_google_is_the_same_group_here_with_its_new_name(
    synced: Synced,
) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.google.add_person(names=[{"givenName": "Bob"}], memberships=_in(team))
    synced.google.add_person(names=[{"givenName": "Cyd"}])
    synced.sync()
    group = _groups(synced)["Team"]
    cursor = synced.svc.changes.latest_cursor(synced.account)
    rename_at_google(synced.google, team, "Crew")
    synced.sync()
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    for name in ("Ann", "Bob"):
        groups = synced.by_name(name)["groups"]
        assert [(g["id"], g["name"]) for g in groups] == [(group.id, "Crew")]  # type: ignore[index, union-attr]
    assert synced.by_name("Cyd")["groups"] == []
    # One modify for the group and one for each member whose document names it; nothing
    # made, nothing deleted.
    ann, bob = (str(synced.by_name(n)["id"]) for n in ("Ann", "Bob"))
    assert sorted(_deltas(synced, cursor)) == sorted(
        [
            ("contact_group", group.id, "modify"),
            ("contact", ann, "modify"),
            ("contact", bob, "modify"),
        ]
    )
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before
    # A rename through the API later renames that label, not a second one.
    synced.svc.groups.rename(synced.account, group.id, {"name": "Squad"})
    synced.sync()
    assert list(synced.google.user_groups()) == ["Squad"]
    assert synced.google.user_groups()["Squad"]["resourceName"] == team
    assert list(_groups(synced)) == ["Squad"]
    assert _outbox(synced) == 0


def test_a_label_whose_new_name_holds_a_slash_is_renamed_here(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    rename_at_google(synced.google, team, "Sales/East")
    synced.sync()
    assert _groups(synced) == {
        "Sales-East": Group(group.id, synced.account.id, "Sales-East", "Sales-East")
    }
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Sales-East"]  # type: ignore[index]


def test_a_rename_at_google_while_one_made_here_waits_loses_to_it(synced: Synced) -> None:
    """Both renamed the group since the last sync: the rename made through the API is
    delivered (it is the edit Rolodex's user made knowing the group as it was), and Google's
    is written over; until then a pull leaves the waiting name alone."""
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    rename_at_google(synced.google, team, "Squad")
    synced.google.fail(429, method="PUT", path="contactGroups/", retry_after="120")
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    synced.sync()  # the rename waits; the pull sees "Squad" at Google
    assert list(_groups(synced)) == ["Crew"]
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [group.id]  # type: ignore[index]
    _due_now(synced)
    synced.sync()
    assert list(synced.google.user_groups()) == ["Crew"]
    assert synced.google.user_groups()["Crew"]["resourceName"] == team
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Crew"]  # type: ignore[index]
    assert _outbox(synced) == 0


def test_a_rename_here_meeting_a_rename_at_google_in_one_sync_wins(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    rename_at_google(synced.google, team, "Squad")
    synced.sync()  # the push's stale etag is read again, and the rename written over
    assert list(synced.google.user_groups()) == ["Crew"]
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Crew"]  # type: ignore[index]


def test_a_group_deleted_at_google_is_deleted_here_and_its_contacts_stay(
    synced: Synced,
) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.google.add_person(names=[{"givenName": "Bob"}], memberships=_in("contactGroups/starred"))
    synced.sync()
    group = _groups(synced)["Team"]
    cursor = synced.svc.changes.latest_cursor(synced.account)
    delete_at_google(synced.google, team)
    synced.sync()
    assert list(_groups(synced)) == ["Starred"]
    assert synced.by_name("Ann")["groups"] == []
    assert [g["name"] for g in synced.by_name("Bob")["groups"]] == ["Starred"]  # type: ignore[index]
    ann = str(synced.by_name("Ann")["id"])
    found = _deltas(synced, cursor)
    assert ("contact_group", group.id, "delete") in found
    assert ("contact", ann, "modify") in found
    assert not [d for d in found if d[0] == "contact" and d[2] != "modify"]
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before


def test_a_label_made_at_google_is_a_group_here_before_anyone_is_in_it(
    synced: Synced,
) -> None:
    synced.sync()
    synced.google.add_group("Later")
    synced.sync()
    assert list(_groups(synced)) == ["Later"]
    ann = synced.google.add_person(names=[{"givenName": "Ann"}])
    synced.google.edit_person(
        ann, memberships=_in(synced.google.user_groups()["Later"]["resourceName"])
    )
    synced.sync()
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [_groups(synced)["Later"].id]  # type: ignore[index]


def test_groups_linked_by_name_before_are_linked_by_resource_name_at_the_next_pull(
    synced: Synced,
) -> None:
    """An account synced when labels were linked by their name ("category:<name>")."""
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    with synced.svc.accounts.store.write() as tx:
        tx.groups.set_remote(synced.account.id, group.id, "category:Team", None)
    synced.sync()  # nothing changed at Google: the group is linked by its id again
    rename_at_google(synced.google, team, "Crew")
    synced.sync()
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    # A rename waiting under the old link reaches the label it names.
    with synced.svc.accounts.store.write() as tx:
        tx.groups.set_remote(synced.account.id, group.id, "category:Crew", None)
    synced.svc.groups.rename(synced.account, group.id, {"name": "Squad"})
    synced.sync()
    assert list(synced.google.user_groups()) == ["Squad"]
    assert synced.google.user_groups()["Squad"]["resourceName"] == team
    assert _groups(synced) == {"Squad": Group(group.id, synced.account.id, "Squad", "Squad")}


def test_a_membership_merged_with_a_change_made_at_google_is_the_one_made_here(
    synced: Synced,
) -> None:
    team = synced.google.add_group("Team")
    crew = synced.google.add_group("Crew")
    ann = synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    groups = _groups(synced)
    joined = groups["Crew"].id
    synced.svc.contacts.update(synced.account, str(synced.by_name("Ann")["id"]), {"group": joined})
    synced.google.edit_person(ann, nicknames=[{"value": "Annie"}])  # a stale etag here
    synced.sync()
    assert _members(synced.person_named("Ann")) == {team, crew, "contactGroups/myContacts"}
    assert synced.by_name("Ann")["nickname"] == "Annie"
    in_groups = [g["id"] for g in synced.by_name("Ann")["groups"]]  # type: ignore[index]
    assert in_groups == [groups["Team"].id, joined]


def test_a_contact_joins_a_group_renamed_at_google_since_the_last_sync(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()
    group = _groups(synced)["Team"]
    rename_at_google(synced.google, team, "Crew")
    # Bob joins the group here while it is still "Team" here: the label it is at Google.
    synced.svc.contacts.update(
        synced.account, str(synced.by_name("Bob")["id"]), {"group": group.id}
    )
    synced.sync()
    assert list(synced.google.user_groups()) == ["Crew"]  # not a second "Team"
    assert team in _members(synced.person_named("Bob"))
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    assert [g["id"] for g in synced.by_name("Bob")["groups"]] == [group.id]  # type: ignore[index]


def test_two_labels_that_swapped_names_at_google_swap_them_here(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    crew = synced.google.add_group("Crew")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    before = _groups(synced)
    rename_at_google(synced.google, team, "Swap")  # names are unique at Google
    rename_at_google(synced.google, crew, "Team")
    rename_at_google(synced.google, team, "Crew")
    synced.sync()
    account = synced.account.id
    assert _groups(synced) == {
        "Crew": Group(before["Team"].id, account, "Crew", "Crew"),
        "Team": Group(before["Crew"].id, account, "Team", "Team"),
    }
    assert [g["name"] for g in synced.by_name("Ann")["groups"]] == ["Crew"]  # type: ignore[index]
    last = synced.log_size()
    synced.sync()
    assert synced.log_size() == last


def test_a_group_deleted_at_google_while_renamed_here_is_made_again(synced: Synced) -> None:
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.sync()
    group = _groups(synced)["Team"]
    delete_at_google(synced.google, team)
    synced.google.fail(429, method="PUT", path="contactGroups/", retry_after="120")
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    synced.sync()  # the rename waits: the pull leaves its group alone
    assert list(_groups(synced)) == ["Crew"]
    _due_now(synced)
    synced.sync()  # Google answers the rename 404: the rename wins, the label is made again
    made = synced.google.user_groups()
    assert list(made) == ["Crew"] and made["Crew"]["resourceName"] != team
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    assert _outbox(synced) == 0
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before


@pytest.mark.parametrize("refusal", [400, 404])
def test_a_contact_put_in_a_group_deleted_at_google_meanwhile_goes_without_it(
    synced: Synced, refusal: int
) -> None:
    """The delete there wins, as it does for the group: the contact is written without it
    (not into a label made again by its name, which the pull would not link here) and the
    pull deletes the group here. Both sides then agree. Google's refusal of the gone group
    may be a 400 or a 404, which must not pass for the contact being gone."""
    synced.google.unknown_group_status = refusal
    team = synced.google.add_group("Team")
    synced.google.add_person(names=[{"givenName": "Ann"}], memberships=_in(team))
    synced.google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()
    group = _groups(synced)["Team"]
    delete_at_google(synced.google, team)
    bob = str(synced.by_name("Bob")["id"])
    # The groups the connector listed at the last pull still hold the label: Google
    # refuses the membership (400), the groups are listed again, and the write retried.
    synced.svc.contacts.update(synced.account, bob, {"group": group.id, "nickname": "Bobby"})
    synced.sync()
    assert _outbox(synced) == 0
    assert synced.google.user_groups() == {}  # not made again
    assert _members(synced.person_named("Bob")) == {"contactGroups/myContacts"}
    assert synced.person_named("Bob")["nicknames"][0]["value"] == "Bobby"
    assert _groups(synced) == {}
    assert synced.by_name("Bob")["groups"] == []
    assert synced.by_name("Bob")["nickname"] == "Bobby"
    before = synced.log_size()
    synced.sync()
    assert synced.log_size() == before


def test_a_group_unknown_to_the_groups_listed_is_looked_for_again_before_it_counts_as_gone(
    synced: Synced, fresh_database_url: str
) -> None:
    """Groups a kept connector listed before a label was made and linked by another
    process's sync do not make a membership of it a deleted group's: they are listed
    again first."""
    synced.google.add_person(names=[{"givenName": "Bob"}])
    synced.sync()  # this runner's connector, kept open, lists no groups
    team = synced.google.add_group("Team")
    other = make_runner(settings_for_tests(fresh_database_url), synced.svc.accounts.store)
    other.run(synced.account.id)  # another process pulls the label
    group = _groups(synced)["Team"]
    synced.svc.contacts.update(
        synced.account, str(synced.by_name("Bob")["id"]), {"group": group.id}
    )
    synced.sync()
    assert _members(synced.person_named("Bob")) == {team, "contactGroups/myContacts"}
    assert [g["id"] for g in synced.by_name("Bob")["groups"]] == [group.id]  # type: ignore[index]


def test_a_contact_written_before_its_new_groups_create_makes_the_group_once(
    synced: Synced,
) -> None:
    """A contact's write sends it as it is now, in a group it joined after the write was
    queued and that is not at Google yet: the group's create goes first (by name, the
    write would make a label that the group's own create, after a rename, made again)."""
    synced.sync()
    ann = orjson.loads(synced.svc.contacts.create(synced.account, {"given_name": "Ann"}))
    synced.svc.contacts.update(synced.account, ann["id"], {"nickname": "Annie"})
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    synced.svc.contacts.update(synced.account, ann["id"], {"group": group.id})
    # Ann's create goes; her next write fails, and the push stops there; so does the pull
    # (before it could take a label of the group's name for the group; a 403, since a 400
    # to a sync-token listing would only start a full sync).
    synced.google.fail(503, method="PATCH", path=":updateContact")
    synced.google.fail(403, method="GET", path="/v1/people/me/connections")
    with pytest.raises(SyncFailed):
        synced.sync()
    synced.svc.groups.rename(synced.account, group.id, {"name": "Crew"})
    _due_now(synced)
    synced.sync()
    assert list(synced.google.user_groups()) == ["Crew"]
    crew = synced.google.user_groups()["Crew"]["resourceName"]
    assert _members(synced.person_named("Ann")) == {crew, "contactGroups/myContacts"}
    assert _groups(synced) == {"Crew": Group(group.id, synced.account.id, "Crew", "Crew")}
    assert [g["id"] for g in synced.by_name("Ann")["groups"]] == [group.id]  # type: ignore[index]
    assert synced.by_name("Ann")["nickname"] == "Annie"
    assert _outbox(synced) == 0


def test_a_retry_finds_the_lost_attempts_label_under_its_earlier_name(
    synced: Synced,
) -> None:
    """A group made at Google as "Team", its reply lost and no pull after it; renamed
    "Crew" here, and another made here as "Team". The retry finds "Team" in Google's
    listing (the lost attempt's, linked to no group here) and renames it "Crew"; the other
    group is made as a label of its own. Nothing is made twice, and no label is left that
    no group here is linked to."""
    synced.sync()
    synced.google.fail(503, method="POST", path="/v1/contactGroups", after=True)
    synced.google.fail(403, method="GET", path="/v1/people/me/connections")
    first = synced.svc.groups.create(synced.account, {"name": "Team"})
    with pytest.raises(SyncFailed):
        synced.sync()
    [lost] = synced.google.user_groups().values()
    synced.svc.groups.rename(synced.account, first.id, {"name": "Crew"})
    second = synced.svc.groups.create(synced.account, {"name": "Team"})
    _due_now(synced)
    synced.sync()
    synced.sync()
    made = synced.google.user_groups()
    assert sorted(made) == ["Crew", "Team"]
    assert made["Crew"]["resourceName"] == lost["resourceName"]
    with synced.svc.accounts.store.read() as tx:
        links = tx.groups.remote_ids(synced.account.id)
    assert links[first.id][0] == "label:" + made["Crew"]["resourceName"]
    assert links[second.id][0] == "label:" + made["Team"]["resourceName"]
    assert sorted(_groups(synced)) == ["Crew", "Team"]
    assert _outbox(synced) == 0


def test_a_group_deleted_here_after_a_lost_create_is_deleted_at_google_too(
    synced: Synced,
) -> None:
    """Made at Google, its reply lost, and no pull linked it before it was deleted here: its
    delete knows no resource name, and what the lost attempt made goes too (found by its
    name in the groups' listing), rather than come back here as a group nobody made."""
    synced.sync()
    synced.google.fail(503, method="POST", path="/v1/contactGroups", after=True)
    synced.google.fail(403, method="GET", path="/v1/people/me/connections")
    group = synced.svc.groups.create(synced.account, {"name": "Team"})
    with pytest.raises(SyncFailed):
        synced.sync()
    assert list(synced.google.user_groups()) == ["Team"]
    synced.svc.groups.delete(synced.account, group.id)
    _due_now(synced)
    synced.sync()
    synced.sync()
    assert synced.google.user_groups() == {}
    assert _groups(synced) == {}
    assert _outbox(synced) == 0
