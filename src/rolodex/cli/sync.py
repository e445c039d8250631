"""``rolodex sync`` and ``rolodex worker``: run syncs now, or as a worker process."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
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
from rolodex.connectors import registry
from rolodex.domain.errors import NoSuchAccount
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox
from rolodex.service.mirror import Mirror
from rolodex.store import Store
from rolodex.sync.runner import SyncFailed, SyncRunner

# Exit status of `rolodex sync --no-wait` when another process is syncing the account.
EXIT_BUSY = 3


def make_runner(settings: Settings, store: Store, interval: float | None = None) -> SyncRunner:
    """A runner over the registry's connectors; ``interval`` (seconds) overrides every
    provider's poll interval."""
    specs = registry.catalog()
    accounts = AccountService(
        store, CredentialBox.from_settings(settings), registry.verify_connection, specs
    )

    def interval_for(provider: str) -> float:
        if interval is not None:
            return interval
        spec = specs.get(provider)
        return settings.sync_interval_for(provider, spec.poll_interval if spec else 30.0)

    return SyncRunner(accounts, Mirror(store), registry.open_connector, interval_for)


def sync(
    account_id: Annotated[str, typer.Argument(help="The account to sync.")],
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help=f"Fail at once (exit status {EXIT_BUSY}) when another process is syncing "
            "the account, instead of waiting for it to finish and then syncing.",
        ),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Sync one account now (push waiting writes, then pull changes), showing progress.

    When another process (the server, a worker) is syncing the account, wait for that
    sync to end, then run this one: the account is up to date when the command returns.
    Exit status 1: the sync failed (the account's last_error says why, too)."""
    settings = settings_for(database_url)
    # A process that only syncs maps no pages of the database (``open_store``'s mmap).
    runner = make_runner(settings, open_store(settings, mmap=False))
    console = Console(stderr=True)
    try:
        # An account that does not exist has no lease to take either: without this, a
        # mistyped id waited forever for "the sync in progress" (--no-wait: exit 3).
        runner.accounts.get(account_id)
    except NoSuchAccount:
        runner.close()
        console.print(f"[red]error:[/red] no account {account_id}")
        raise typer.Exit(1) from None
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

        def waiting(holder: str) -> None:
            console.print(f"waiting for the sync in progress ({holder}) to finish...")

        try:
            if no_wait:
                report = runner.run(account_id, progress)
            else:
                report = runner.wait_and_run(account_id, progress, waiting=waiting)
        except SyncFailed as error:
            # The provider's words, whole and as they are (no rich markup read into them).
            console.print(f"[red]sync failed:[/red] {escape(error.message)}", soft_wrap=True)
            raise typer.Exit(1) from None
        except NoSuchAccount:
            console.print(f"[red]error:[/red] no account {account_id}")
            raise typer.Exit(1) from None
        finally:
            runner.close()
    if report is None:
        console.print("another process is syncing this account right now (--no-wait)")
        raise typer.Exit(EXIT_BUSY)
    print_json(report.__dict__)


def worker(
    interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between syncs of an account; by default each provider's own "
            "(ROLODEX_SYNC_INTERVAL_<PROVIDER>, ROLODEX_SYNC_INTERVAL, or the provider's "
            "default: 30 for CardDAV)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run a sync worker: syncs the accounts that are due, with any number of others.
    SIGTERM or Ctrl-C stops it at a safe point, its leases given back."""
    from rolodex.logs import configure_logging
    from rolodex.worker import Worker

    settings = settings_for(database_url)
    Console(stderr=True).print("sync worker running; Ctrl-C stops it")
    configure_logging()  # JSON lines off a terminal, with the request ids of the work
    worker = Worker(make_runner(settings, open_store(settings, mmap=False), interval))
    worker.run_until_signalled(settings.shutdown_timeout)
