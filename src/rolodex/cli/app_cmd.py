"""``rolodex app``: the application's client id and secret (for native authentication)."""

from __future__ import annotations

import typer

from rolodex.cli.common import DatabaseUrl, open_store, print_json, settings_for
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.credentials import CredentialBox

app = typer.Typer(help="The application's credentials.", no_args_is_help=True)


@app.command()
def show(database_url: DatabaseUrl = None) -> None:
    """Print the client id and secret that POST /connect/token takes."""
    settings = settings_for(database_url)
    store = open_store(settings)
    box = CredentialBox.from_settings(settings)
    client = ApplicationService(store, AccountService(store, box), box).client()
    print_json({"client_id": client.client_id, "client_secret": client.client_secret})
