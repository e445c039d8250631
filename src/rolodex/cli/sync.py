"""``rolodex sync`` and ``rolodex worker``: run syncs now, or as a worker process."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from rolodex.cli.common import DatabaseUrl, open_store, print_json, settings_for
from rolodex.config import Settings
from rolodex.connectors.base import ConnectorError
from rolodex.connectors.registry import open_connector
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.runner import SyncRunner


def make_runner(settings: Settings, store: Store, interval: float | None = None) -> SyncRunner:
    accounts = AccountService(store, CredentialBox.from_settings(settings))
    return SyncRunner(accounts, Mirror(store), open_connector, interval or settings.sync_interval)


def sync(
    account_id: Annotated[str, typer.Argument(help="The account to sync.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Sync one account now (push waiting writes, then pull changes), showing progress."""
    settings = settings_for(database_url)
    runner = make_runner(settings, open_store(settings))
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            report = runner.run(account_id, progress)
        except ConnectorError as error:
            console.print(f"[red]sync failed:[/red] {error}")
            raise typer.Exit(1) from None
    if report is None:
        console.print("another worker is syncing this account right now")
        raise typer.Exit(1)
    print_json(report.__dict__)


def worker(
    interval: Annotated[float, typer.Option(help="Seconds between syncs of an account.")] = 30.0,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a sync worker: syncs the accounts that are due, with any number of others."""
    from rolodex.worker import Worker

    settings = settings_for(database_url)
    Console(stderr=True).print("sync worker running; Ctrl-C stops it")
    with contextlib.suppress(KeyboardInterrupt):
        Worker(make_runner(settings, open_store(settings), interval)).run_forever()
