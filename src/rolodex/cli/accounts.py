"""``rolodex accounts``: create, list, issue tokens, revoke, delete."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rolodex.cli.common import DatabaseUrl, command_group, open_store, print_json, settings_for
from rolodex.connectors.registry import catalog, verify_connection
from rolodex.domain.errors import RolodexError
from rolodex.domain.profiles import PROVIDERS
from rolodex.domain.providers import ProviderSpec, Setting
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox

app = command_group("Manage accounts and their access tokens.")


def _service(database_url: str | None) -> AccountService:
    settings = settings_for(database_url)
    return AccountService(
        open_store(settings), CredentialBox.from_settings(settings), verify_connection, catalog()
    )


def _fail(error: Exception) -> typer.Exit:
    from rolodex.api.errors import describe  # FastAPI: too slow to import for every command

    message = describe(error)[1]["message"]
    # soft_wrap: one line, as the terminal wraps it, not cut at 80 columns (or when piped).
    Console(stderr=True).print(
        f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False
    )
    return typer.Exit(1)


def _secret(name: str, path: Path | None, env: str | None) -> str | None:
    """A secret setting, from a file or an environment variable: never the command line,
    where every user of the machine can read it."""
    if path is not None:
        try:
            return path.read_text().rstrip("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(f"cannot read {path} (for {name}): {error}") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise typer.BadParameter(f"environment variable {env} (for {name}) is not set")
        return value
    return None


def _connection_options() -> list[tuple[Setting, str, type, Any]]:
    """One option per setting of every provider the registry knows, two for a secret
    (``--NAME-file`` and ``--NAME-env``): (setting, parameter, type, typer option)."""
    options: list[tuple[Setting, str, type, Any]] = []
    seen: set[str] = set()
    for spec in catalog().specs.values():
        for setting in spec.settings:
            if setting.name in seen:
                continue
            seen.add(setting.name)
            where = f"{spec.title}: {setting.help}"
            if setting.secret:
                options.append(
                    (
                        setting,
                        f"{setting.name}_file",
                        Path,
                        typer.Option(
                            f"{setting.flag}-file",
                            help=f"{where} Read from this file.",
                            exists=True,
                            dir_okay=False,
                            readable=True,
                            show_default=False,
                        ),
                    )
                )
                options.append(
                    (
                        setting,
                        f"{setting.name}_env",
                        str,
                        typer.Option(
                            f"{setting.flag}-env",
                            help=f"{where} Read from this environment variable.",
                            show_default=False,
                        ),
                    )
                )
            else:
                options.append(
                    (
                        setting,
                        setting.name,
                        str,
                        typer.Option(setting.flag, help=where, show_default=False),
                    )
                )
    return options


_OPTIONS = _connection_options()


def create(email: str, name: str, provider: str, database_url: str | None, **given: Any) -> None:
    """Create an account and print its first access token as JSON.

    With connection settings (for CardDAV --url and credentials; for the other providers
    their settings below) the account is connected: its address book lives at the provider
    and is kept in sync both ways. The credentials are checked first; nothing is saved if
    they do not work. They are stored encrypted. Connecting an address already connected at
    the same provider re-links that account. Without settings a provider other than local
    makes a sandbox account: contacts live only in Rolodex, under that provider's rules.
    """
    service = _service(database_url)
    settings: dict[str, str] = {}
    for setting, parameter, _kind, _option in _OPTIONS:
        if setting.secret and parameter.endswith("_file"):
            value = _secret(setting.name, given.get(parameter), given.get(f"{setting.name}_env"))
        elif not setting.secret:
            value = given.get(parameter)
        else:
            continue
        if value is not None:
            settings[setting.name] = value
    try:
        if not settings:
            if provider not in PROVIDERS and provider in service.providers.names:
                # A sandbox named by v2's alias (gmail, office365...): its provider's.
                provider = service.providers.resolve(provider)[0].name
            created = service.create(email, name=name, provider=provider)
        else:
            spec, alias = service.providers.resolve(provider)
            foreign = sorted(set(settings) - {s.name for s in spec.settings})
            if foreign:
                raise typer.BadParameter(f"{spec.title} accounts take no {', '.join(foreign)}")
            missing = _missing(spec, alias, settings)
            if missing:
                raise typer.BadParameter(f"{spec.title} accounts need {'; '.join(missing)}")
            created = service.connect(email, name=name, provider=provider, settings=settings)
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


def _missing(spec: ProviderSpec, alias: str | None, given: dict[str, str]) -> list[str]:
    """The options of the required settings not given (the service names the settings
    themselves, for the API: "redirect_uri" where the command line takes --redirect-uri)."""
    preset = spec.aliases.get(alias or "", {})
    return [
        f"{s.flag}-file or {s.flag}-env" if s.secret else s.flag
        for s in spec.settings
        if s.required
        and not s.defaults_to_email
        and s.default is None
        and not given.get(s.name)
        and not preset.get(s.name)
    ]


def _create_signature() -> inspect.Signature:
    """``create``'s options, as typer reads them: the fixed ones and the registry's."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    names = ", ".join(dict.fromkeys((*PROVIDERS, *catalog().names)))
    fixed = [
        inspect.Parameter(
            "email",
            keyword,
            annotation=Annotated[str, typer.Option("--email", help="The account's email address.")],
        ),
        inspect.Parameter(
            "name",
            keyword,
            default="",
            annotation=Annotated[str, typer.Option("--name", help="The owner's full name.")],
        ),
        inspect.Parameter(
            "provider",
            keyword,
            default="local",
            annotation=Annotated[
                str, typer.Option("--provider", help=f"Where the address book lives: {names}.")
            ],
        ),
        inspect.Parameter("database_url", keyword, default=None, annotation=DatabaseUrl),
    ]
    generated = [
        inspect.Parameter(
            parameter, keyword, default=None, annotation=Annotated[kind | None, option]
        )
        for _setting, parameter, kind, option in _OPTIONS
    ]
    return inspect.Signature([*fixed, *generated])


create.__signature__ = _create_signature()  # type: ignore[attr-defined]
create.__annotations__ = {
    p.name: p.annotation
    for p in create.__signature__.parameters.values()  # type: ignore[attr-defined]
}
app.command()(create)


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
    console = Console()
    # Never narrower than the table: an id cut to "egnakbuljfdf2..." cannot be copied.
    wide = console.measure(table, options=console.options.update_width(10_000)).maximum
    if wide > console.width:
        console = Console(width=wide)
    console.print(table)


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
    access_token: Annotated[
        str,
        typer.Argument(
            help='The token to revoke (an older one that starts with "-" goes after "--": '
            "rolodex accounts revoke -- -abc...)."
        ),
    ],
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
