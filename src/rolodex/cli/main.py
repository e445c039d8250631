"""``rolodex``: serve the API, manage accounts, migrate the database."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from rich.console import Console

from rolodex.cli import accounts, app_cmd
from rolodex.cli import sync as sync_cmd
from rolodex.cli.common import DatabaseUrl, command_group, open_store, settings_for

app = command_group(
    "Rolodex: a self-hosted contacts API in the Nylas Contacts API v2 wire format.",
    add_completion=False,
)
app.add_typer(accounts.app, name="accounts")
app.add_typer(app_cmd.app, name="app")
app.command("sync")(sync_cmd.sync)
app.command("worker")(sync_cmd.worker)
db = command_group("Database schema.")
app.add_typer(db, name="db")


@db.command()
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply the schema migrations (serve does this on start too)."""
    store = open_store(settings_for(database_url))
    typer.echo(f"database at {store.engine.url.render_as_string()} is up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5555,
    database_url: DatabaseUrl = None,
    sync_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between syncs of each connected account (by default each "
            "provider's own: ROLODEX_SYNC_INTERVAL_<PROVIDER>, ROLODEX_SYNC_INTERVAL, or the "
            "provider's default); 0 runs no sync in this process (run `rolodex worker` "
            "processes instead)."
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="On a database without accounts, create a demo account and print its token."
        ),
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes on the one port (each stateless: the database holds what "
            "they share). The sync worker, if any, runs once, in the supervising process.",
        ),
    ] = 1,
) -> None:
    """Serve the API (migrating the database first)."""
    from rolodex.api.app import build_services, create_app

    settings = settings_for(database_url)
    store = open_store(settings)
    # soft_wrap: whole lines (the terminal wraps them), never cut at 80 columns mid-command.
    console = Console(stderr=True, soft_wrap=True)
    base = f"http://{host}:{port}"
    if demo:
        svc = build_services(settings, store)
        if not svc.accounts.list():
            from rolodex.service.demo import seed_demo

            created = svc.accounts.create("demo@example.com", name="Demo User")
            seed_demo(created.account, svc.contacts, svc.groups, svc.pictures)
            console.print(f"Created a demo account [bold]{created.account.id}[/bold].")
            console.print(f"Its access token: [bold]{created.access_token}[/bold]")
            console.print("Try it:")
            console.print(
                f"  curl -u {created.access_token}: '{base}/contacts?limit=5'", highlight=False
            )
        else:
            console.print(
                "Accounts exist; `rolodex accounts list` shows them and "
                "`rolodex accounts token ACCOUNT_ID` issues a token."
            )
    console.print(f"API docs: {base}/docs")
    # uvicorn shuts down gracefully on SIGTERM, then raises it again to end the process as
    # the signal would: end it through the finally below instead, so that the sync thread
    # stops at a safe point and gives its lease back.
    signal.signal(signal.SIGTERM, _exit_quietly)
    worker = None
    if sync_interval is None or sync_interval > 0:
        from rolodex.cli.sync import make_runner
        from rolodex.worker import Worker

        worker = Worker(make_runner(settings, store, sync_interval))
        worker.start()
    try:
        import uvicorn

        from rolodex.logs import configure_logging

        # JSON lines off a terminal, uvicorn's records included; the access log is ours
        # (rolodex.api.observe), with the request id.
        configure_logging()
        from rolodex.api.server import server_config

        if workers > 1:
            from rolodex.api.workers import serve_workers

            serve_workers(settings, host, port, workers)
            return
        # Limits on request heads, connections and idle keep-alives (rolodex.api.server).
        uvicorn.Server(server_config(create_app(settings, store), host, port, settings)).run()
    finally:
        if worker is not None:
            worker.stop(settings.shutdown_timeout)


def _exit_quietly(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    from rolodex.service.credentials import KeyUnusable

    try:
        app()
    except KeyUnusable as exc:  # an operator's mistake, not a crash: say what to fix
        sys.stderr.write(f"rolodex: {exc}\n")
        sys.exit(1)
