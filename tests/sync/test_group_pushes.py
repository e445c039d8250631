"""Group writes whose replies were lost, made into cases of their own from what the
convergence state machine found (test_convergence.py, GoogleGroupsSyncMachine)."""

from __future__ import annotations

import contextlib
import time

from sqlalchemy import select

from rolodex.store.schema import outbox
from rolodex.sync.runner import SyncFailed
from tests.sync.test_convergence import GoogleGroupsSyncMachine


def test_a_group_made_again_under_a_new_name_after_a_lost_reply_is_made_once() -> None:
    rig = GoogleGroupsSyncMachine()
    try:
        rig.local_create_group(1)
        rig.sync()  # "L1" is at the provider
        [group_id] = rig.local_groups()
        rig.local_rename_group(0, 5)  # renamed here to "L5"...
        rig.remote_delete_group(0)  # ...while deleted there: the rename makes it again
        rig.remote.plan.fail("create_group", "after")  # made, but the reply is lost
        rig.sync()
        assert list(rig.remote.label_names.values()) == ["L5"]
        rig.local_rename_group(0, 1)  # and renamed back here before the retry
        rig.converge()
        # The group the lost attempt made is the one renamed, not left as a second one.
        assert list(rig.remote.label_names.values()) == ["L1"]
        assert rig.local_groups() == {group_id: "L1"}
        assert rig.group_links()[group_id] == next(iter(rig.remote.label_names))
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_retry_under_a_new_name_makes_nothing_under_the_earlier_one() -> None:
    """An attempt that never reached the provider (it was down), the group renamed here
    before the retry: the retry looks for a group under the earlier name, finds none, and
    makes the group under its new name only; that attempt's reply lost too, the one after
    it finds it there."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.remote.plan.fail("create_group", "after")
        rig.local_create_group(2)
        rig.sync_while_down()  # the create is tried as "L2" while the provider is down
        rig.local_rename_group(0, 1)
        rig.sync()  # "L1" is made there; its reply is lost
        assert list(rig.remote.label_names.values()) == ["L1"]
        rig.converge()
        assert list(rig.remote.label_names.values()) == ["L1"]
        [group_id] = rig.local_groups()
        assert rig.local_groups() == {group_id: "L1"}
        assert rig.group_links()[group_id] == next(iter(rig.remote.label_names))
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_group_renamed_by_a_retry_whose_reply_was_lost_is_found_under_that_name() -> None:
    """A retry finds the earlier attempt's group under its earlier name and renames it to
    the new one; that reply is lost, and the group is renamed here once more before the
    next retry: the group is there under the name the lost rename gave it, and that is
    where the next retry finds it (seeds 44 and 48 of the groups machine made a group
    nobody made of it)."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.remote.plan.fail("create_group", "after")
        rig.remote.plan.fail("collections", "before")
        rig.local_create_group(3)
        rig.sync()  # "L3" made there, its reply lost, and no pull
        rig.local_rename_group(0, 5)
        rig.remote.plan.fail("rename_group", "after")
        rig.remote.plan.fail("collections", "before")
        rig.sync()  # "L3" found and renamed "L5" there; that reply lost too, no pull
        assert list(rig.remote.label_names.values()) == ["L5"]
        rig.local_rename_group(0, 3)  # back to "L3" here
        rig.converge()
        assert list(rig.remote.label_names.values()) == ["L3"]
        [group_id] = rig.local_groups()
        assert rig.local_groups() == {group_id: "L3"}
        assert rig.group_links()[group_id] == next(iter(rig.remote.label_names))
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_retry_never_takes_the_label_another_group_here_is_linked_to() -> None:
    """The earlier attempt's label, found by its name, is no longer that group's to take
    when the pull has linked it to another group here meanwhile (one made here under that
    name since the rename): the retry makes its group under its own name instead."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.remote.plan.fail("create_group", "after")
        rig.remote.plan.fail("collections", "before")
        rig.local_create_group(2)
        rig.sync()  # "L2" is made there for the first; its reply is lost, and no pull
        rig.local_rename_group(0, 1)  # renamed "L1" here...
        rig.local_create_group(2)  # ...and another group made here as "L2"
        rig.remote.plan.fail("find_group", "before")  # the retry stops; the pull goes on
        rig.sync()
        [label] = rig.remote.label_names
        groups = {name: group_id for group_id, name in rig.local_groups().items()}
        # The pull took the label for the group of its name here.
        assert rig.group_links() == {groups["L2"]: label}
        rig.converge()
        assert rig.local_groups() == {groups["L1"]: "L1", groups["L2"]: "L2"}
        links = rig.group_links()
        assert {rig.remote.label_names[links[g]] for g in groups.values()} == {"L1", "L2"}
        assert links[groups["L2"]] == label
        assert sorted(rig.remote.label_names.values()) == ["L1", "L2"]
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_group_deleted_here_after_a_lost_create_is_deleted_there_too() -> None:
    """Its delete knows no provider id (none came back), and its create is dropped with
    the group: what the lost attempt made must go too, not come back as a group nobody
    made here."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.remote.plan.fail("create_group", "after")  # made, but the reply is lost...
        rig.remote.plan.fail("collections", "before")  # ...and no pull links it
        rig.local_create_group(2)
        rig.sync()
        assert list(rig.remote.label_names.values()) == ["L2"]
        rig.local_delete_group(0)
        rig.converge()
        assert rig.remote.label_names == {}
        assert rig.local_groups() == {}
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_pull_while_that_delete_waits_makes_no_group_of_the_lost_label() -> None:
    """The write that deletes what the lost attempt made finds it by its name, and its
    delete fails: the pull after it sees the label, which is no group here (the write,
    retried, deletes it)."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.remote.plan.fail("create_group", "after")
        rig.remote.plan.fail("collections", "before")
        rig.local_create_group(2)
        rig.sync()  # made, its reply lost, and no pull
        rig.local_delete_group(0)
        rig.remote.plan.fail("delete_group", "before")
        rig.sync()
        assert list(rig.remote.label_names.values()) == ["L2"]
        assert rig.local_groups() == {}
        rig.converge()
        assert rig.remote.label_names == {}
        assert rig.local_groups() == {}
    finally:
        rig.svc.accounts.delete(rig.account.id)


def test_a_create_held_up_by_a_rename_behind_it_is_tried_again_soon() -> None:
    """A contact's write delivers its new group's create first; when that group's name is
    still another group's there (renamed here, its rename later in the outbox), the create
    has to wait for that rename, which the same push delivers: it is parked for a few
    seconds, as a write that may succeed later, not for the hour of a provider's refusal."""
    rig = GoogleGroupsSyncMachine()
    try:
        rig.local_create_group(1)
        rig.local_create({"given_name"})
        rig.sync()  # "L1" and the contact are there
        rig.local_update(0, {"nickname"})  # the contact's write, first in the outbox
        rig.local_rename_group(0, 3)  # "L1" becomes "L3" here...
        rig.local_create_group(1)  # ...and another group takes "L1"
        groups = {name: group_id for group_id, name in rig.local_groups().items()}
        rig.local_join(0, list(rig.local_groups()).index(groups["L1"]))
        first = min(_outbox(rig).items())
        assert first[1][0] != groups["L1"]  # the contact's write
        started = time.time()
        with contextlib.suppress(SyncFailed):
            rig.runner.run(rig.account.id)
        parked = [at for _seq, (oid, at) in _outbox(rig).items() if oid == groups["L1"]]
        assert sorted(rig.remote.label_names.values()) == ["L3"]
        assert len(parked) == 1 and parked[0] - started < 60, parked
        # Nor was the contact written meanwhile into the group that had the name there.
        [(remote_id, _uid, _etag)] = rig.links().values()
        assert rig.remote.items[remote_id].label_ids == ()
        rig.converge()
        assert sorted(rig.remote.label_names.values()) == ["L1", "L3"]
        rig.check_same_on_both_sides()
        [contact_id] = rig.links()
        assert rig.local_memberships(contact_id) == {"L1"}
    finally:
        rig.svc.accounts.delete(rig.account.id)


def _outbox(rig: GoogleGroupsSyncMachine) -> dict[int, tuple[str, float]]:
    """seq -> (object id, when it is due) of the account's waiting writes."""
    with rig.store.read() as tx:
        rows = tx.conn.execute(
            select(outbox.c.seq, outbox.c.object_id, outbox.c.next_attempt_at).where(
                outbox.c.account_id == rig.account.id
            )
        )
        return {seq: (oid, at) for seq, oid, at in rows}
