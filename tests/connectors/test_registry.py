"""The provider registry: every connector package is a provider, and what connecting one
needs is derived from its one declaration everywhere (CLI flags, native auth, capabilities)."""

from __future__ import annotations

import pkgutil

import typer

import rolodex.connectors
from rolodex.cli.main import app
from rolodex.connectors.registry import catalog, providers
from rolodex.domain.profiles import PROVIDERS


def test_every_connector_package_is_a_provider_with_a_profile() -> None:
    packages = {
        info.name for info in pkgutil.iter_modules(rolodex.connectors.__path__) if info.ispkg
    }
    assert set(providers()) == packages
    assert set(providers()) <= set(PROVIDERS)
    for name, provider in providers().items():
        assert provider.spec.name == name
        assert provider.spec.poll_interval > 0
        assert provider.spec.settings


def test_every_name_means_one_provider() -> None:
    names = [n for spec in catalog().specs.values() for n in (spec.name, *spec.aliases)]
    assert len(names) == len(set(names))
    for name in names:
        spec, _alias = catalog().resolve(name)
        assert name == spec.name or name in spec.aliases


def test_accounts_create_has_a_flag_for_every_setting() -> None:
    command = typer.main.get_command(app).commands["accounts"].commands["create"]  # type: ignore[attr-defined]
    flags = {opt for param in command.params for opt in param.opts}
    for spec in catalog().specs.values():
        for setting in spec.settings:
            if setting.secret:
                # Secrets from a file or the environment, never the command line.
                assert {f"{setting.flag}-file", f"{setting.flag}-env"} <= flags
                assert setting.flag not in flags
            else:
                assert setting.flag in flags
