"""``rolodex app``: the application's credentials (native authentication and hosted
sign-in) and the redirect URIs hosted sign-in may send users back to."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rolodex.cli.common import DatabaseUrl, command_group, open_store, print_json, settings_for
from rolodex.config import Settings
from rolodex.connectors.registry import catalog, oauth_sign_ins
from rolodex.domain.errors import InvalidAccount
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.credentials import CredentialBox
from rolodex.service.signin import SignInService
from rolodex.store import Store

app = command_group("The application's credentials.")
redirect_uri = command_group(
    "The redirect URIs hosted sign-in (GET /oauth/authorize) may send users back to."
)
app.add_typer(redirect_uri, name="redirect-uri")

Url = Annotated[str, typer.Argument(help="The exact URI, as the application will send it.")]


def _services(settings: Settings, store: Store) -> tuple[ApplicationService, SignInService]:
    box = CredentialBox.from_settings(settings)
    accounts = AccountService(store, box, providers=catalog())
    application = ApplicationService(store, accounts, box)
    # From the registry, not the API app: importing FastAPI's app cost every CLI command,
    # `rolodex sync` included, about half a second.
    sign_ins = oauth_sign_ins(vars(settings))
    return application, SignInService(store, application, accounts, box, sign_ins)


@app.command()
def show(database_url: DatabaseUrl = None) -> None:
    """Print the client id and secret (POST /connect/token, /oauth/token), the registered
    redirect URIs, what hosted sign-in offers and the callback URLs to register with
    Google and Microsoft."""
    settings = settings_for(database_url)
    application, signin = _services(settings, open_store(settings))
    client = application.client()
    public = settings.public_url.rstrip("/") if settings.public_url else None
    offered = signin.options()
    hosted: dict[str, Any] = {}
    oauth = set(signin.all_options()) - set(signin.form_options())
    for name in signin.all_options():
        entry: dict[str, Any] = {"title": signin.title(name), "offered": name in offered}
        if name in oauth:
            entry["callback_url"] = f"{public}/oauth/callback/{name}" if public else None
            if name not in offered:
                entry["configure"] = (
                    f"ROLODEX_{name.upper()}_CLIENT_ID and ROLODEX_{name.upper()}_CLIENT_SECRET"
                )
        hosted[name] = entry
    value: dict[str, Any] = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uris": signin.redirect_uris(),
        "hosted_sign_in": hosted,
    }
    if public is None:
        value["note"] = (
            "set ROLODEX_PUBLIC_URL (the address browsers reach this server at) to get the "
            "callback URLs to register with Google and Microsoft"
        )
    print_json(value)


@redirect_uri.command("add")
def add(url: Url, database_url: DatabaseUrl = None) -> None:
    """Register a redirect URI."""
    settings = settings_for(database_url)
    _, signin = _services(settings, open_store(settings))
    try:
        added = signin.add_redirect_uri(url)
    except InvalidAccount as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"registered {url}" if added else f"{url} was registered already")


@redirect_uri.command("list")
def list_(database_url: DatabaseUrl = None) -> None:
    """Print the registered redirect URIs, one a line."""
    settings = settings_for(database_url)
    _, signin = _services(settings, open_store(settings))
    for uri in signin.redirect_uris():
        typer.echo(uri)


@redirect_uri.command("remove")
def remove(url: Url, database_url: DatabaseUrl = None) -> None:
    """Remove a redirect URI: sign-ins that name it are refused from now on."""
    settings = settings_for(database_url)
    _, signin = _services(settings, open_store(settings))
    if not signin.remove_redirect_uri(url):
        typer.echo(f"error: {url} is not registered", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {url}")
