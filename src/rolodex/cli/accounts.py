"""``rolodex accounts``: create, list, issue tokens, revoke, delete."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rolodex.cli.common import DatabaseUrl, open_store, print_json, settings_for
from rolodex.domain.errors import RolodexError
from rolodex.domain.profiles import PROVIDERS
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox

app = typer.Typer(help="Manage accounts and their access tokens.", no_args_is_help=True)


def _service(database_url: str | None) -> AccountService:
    settings = settings_for(database_url)
    return AccountService(open_store(settings), CredentialBox.from_settings(settings))


def _fail(error: Exception) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {error!r}")
    return typer.Exit(1)


@app.command()
def create(
    email: Annotated[str, typer.Option("--email", help="The account's email address.")],
    name: Annotated[str, typer.Option("--name", help="The owner's full name.")] = "",
    provider: Annotated[
        str,
        typer.Option(
            "--provider",
            help=f"Where the address book lives: {', '.join(PROVIDERS)}. Without connection "
            "settings a non-local provider makes a sandbox account: contacts live only in "
            "Rolodex, under that provider's rules.",
        ),
    ] = "local",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account and print its first access token as JSON."""
    try:
        created = _service(database_url).create(email, name=name, provider=provider)
    except RolodexError as error:
        raise _fail(error) from None
    print_json(
        {
            "account_id": created.account.id,
            "access_token": created.access_token,
            "email_address": created.account.email_address,
            "provider": created.account.provider,
            "sandbox": created.account.sandbox,
        }
    )


@app.command("list")
def list_accounts(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the accounts."""
    accounts = _service(database_url).list()
    if as_json:
        print_json(
            [
                {
                    "account_id": a.id,
                    "email_address": a.email_address,
                    "provider": a.provider,
                    "sandbox": a.sandbox,
                    "sync_state": a.sync_state,
                    "contacts": a.contact_count,
                }
                for a in accounts
            ]
        )
        return
    table = Table("account_id", "email", "provider", "sandbox", "sync_state", "contacts")
    for a in accounts:
        table.add_row(
            a.id, a.email_address, a.provider, str(a.sandbox), a.sync_state, str(a.contact_count)
        )
    Console().print(table)


@app.command()
def token(
    account_id: Annotated[str, typer.Argument(help="The account to issue a token for.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Issue another access token for an account."""
    try:
        issued = _service(database_url).issue_token(account_id)
    except RolodexError as error:
        raise _fail(error) from None
    print_json({"account_id": account_id, "access_token": issued})


@app.command()
def revoke(
    access_token: Annotated[str, typer.Argument(help="The token to revoke.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an access token: it is refused from then on."""
    try:
        _service(database_url).revoke(access_token)
    except RolodexError as error:
        raise _fail(error) from None
    typer.echo("revoked")


@app.command()
def delete(
    account_id: Annotated[str, typer.Argument(help="The account to delete.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an account with its contacts, groups, pictures and tokens."""
    try:
        _service(database_url).delete(account_id)
    except RolodexError as error:
        raise _fail(error) from None
    typer.echo("deleted")
