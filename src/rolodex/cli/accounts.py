"""``rolodex accounts``: create, list, issue tokens, revoke, delete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rolodex.cli.common import DatabaseUrl, open_store, print_json, settings_for
from rolodex.connectors.registry import verify_connection
from rolodex.domain.errors import RolodexError
from rolodex.domain.profiles import PROVIDERS
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox

app = typer.Typer(help="Manage accounts and their access tokens.", no_args_is_help=True)


def _service(database_url: str | None) -> AccountService:
    settings = settings_for(database_url)
    return AccountService(
        open_store(settings), CredentialBox.from_settings(settings), verify_connection
    )


def _fail(error: Exception) -> typer.Exit:
    from rolodex.api.errors import describe  # FastAPI: too slow to import for every command

    Console(stderr=True).print(f"[red]error:[/red] {describe(error)[1]['message']}")
    return typer.Exit(1)


def _password(path: Path | None, env: str | None) -> str:
    if path is not None:
        return path.read_text().rstrip("\n")
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise typer.BadParameter(f"environment variable {env} is not set")
        return value
    raise typer.BadParameter("a connected account needs --password-file or --password-env")


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
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="CardDAV: the server (discovered by RFC 6764) or an address book's URL.",
        ),
    ] = None,
    username: Annotated[str | None, typer.Option("--username", help="CardDAV user name.")] = None,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="Read the password from this file.", dir_okay=False),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Read the password from this environment variable."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account and print its first access token as JSON.

    With --url (and credentials) the account is connected: its address book lives at the
    provider and is kept in sync both ways. The credentials are checked first; nothing is
    saved if they do not work. They are stored encrypted.
    """
    service = _service(database_url)
    try:
        if url is None:
            created = service.create(email, name=name, provider=provider)
        else:
            password = _password(password_file, password_env)
            created = service.connect(
                email,
                name=name,
                provider=provider,
                settings={"url": url, "username": username or email, "password": password},
            )
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
