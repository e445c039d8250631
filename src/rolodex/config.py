"""Configuration from flags and the environment; one place for every setting's default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rolodex.store.database import DEFAULT_DATABASE_URL, sqlite_path


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(name, "").split(",") if p.strip())


def _float_or_none(value: str | None) -> float | None:
    return float(value) if value else None


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _env("ROLODEX_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    # Encrypts provider credentials and the client secret at rest. ROLODEX_SECRET_KEY (a
    # Fernet key) wins over the key file (see key_file), which is created on first use.
    secret_key: str | None = field(default_factory=lambda: os.environ.get("ROLODEX_SECRET_KEY"))
    secret_key_file: str | None = field(
        default_factory=lambda: os.environ.get("ROLODEX_SECRET_KEY_FILE") or None
    )
    # The absolute base URL clients reach the server at (for picture_url); when unset it
    # is taken from each request's Host.
    public_url: str | None = field(default_factory=lambda: os.environ.get("ROLODEX_PUBLIC_URL"))
    # Without a public URL, the Host names requests may use (comma list; ".example.com"
    # also takes its subdomains); empty takes any well-formed host name. A Host that is not
    # well-formed or not allowed is answered 400.
    allowed_hosts: tuple[str, ...] = field(
        default_factory=lambda: _env_list("ROLODEX_ALLOWED_HOSTS")
    )
    # Seconds between syncs of each connected account: ROLODEX_SYNC_INTERVAL_<PROVIDER>
    # (ROLODEX_SYNC_INTERVAL_GOOGLE=120), else ROLODEX_SYNC_INTERVAL for every provider,
    # else the provider's own default (its ProviderSpec.poll_interval).
    sync_interval: float | None = field(
        default_factory=lambda: _float_or_none(os.environ.get("ROLODEX_SYNC_INTERVAL"))
    )

    def sync_interval_for(self, provider: str, default: float) -> float:
        own = _float_or_none(os.environ.get(f"ROLODEX_SYNC_INTERVAL_{provider.upper()}"))
        if own is not None:
            return own
        return self.sync_interval if self.sync_interval is not None else default

    # Bound of each API process's in-process cache of hot reads (pages of the unfiltered
    # list, single contacts), in MiB; 0 turns it off. Entries hold for one account
    # generation, so writes from any process invalidate them (rolodex.service.readcache).
    read_cache_mb: float = field(
        default_factory=lambda: float(_env("ROLODEX_READ_CACHE_MB", "128"))
    )

    # The HTTP server's own limits (rolodex.api.server): seconds a client has to send a
    # request's head and then its body, bytes of the head and of its URL, open connections,
    # and seconds an idle keep-alive connection is kept.
    header_timeout: float = field(
        default_factory=lambda: float(_env("ROLODEX_HEADER_TIMEOUT", "10"))
    )
    body_timeout: float = field(default_factory=lambda: float(_env("ROLODEX_BODY_TIMEOUT", "60")))
    max_header_bytes: int = field(
        default_factory=lambda: int(_env("ROLODEX_MAX_HEADER_BYTES", "16384"))
    )
    max_url_bytes: int = field(default_factory=lambda: int(_env("ROLODEX_MAX_URL_BYTES", "8192")))
    max_connections: int = field(
        default_factory=lambda: int(_env("ROLODEX_MAX_CONNECTIONS", "1000"))
    )
    keep_alive_timeout: float = field(
        default_factory=lambda: float(_env("ROLODEX_KEEP_ALIVE_TIMEOUT", "5"))
    )
    # On SIGTERM or Ctrl-C: how long requests in flight and a running sync get to finish
    # (rolodex.api.server, rolodex.worker) before they are cut short.
    shutdown_timeout: float = field(
        default_factory=lambda: float(_env("ROLODEX_SHUTDOWN_TIMEOUT", "10"))
    )

    # Hosted sign-in (rolodex.service.signin): the OAuth clients Rolodex signs users in to
    # Google and Microsoft with, and where their consent screens and token endpoints are.
    # A provider whose client id or secret is not set is not offered.
    google_client_id: str | None = field(
        default_factory=lambda: os.environ.get("ROLODEX_GOOGLE_CLIENT_ID") or None
    )
    google_client_secret: str | None = field(
        default_factory=lambda: os.environ.get("ROLODEX_GOOGLE_CLIENT_SECRET") or None
    )
    google_auth_url: str = field(
        default_factory=lambda: _env(
            "ROLODEX_GOOGLE_AUTH_URL", "https://accounts.google.com/o/oauth2/v2/auth"
        )
    )
    google_token_url: str = field(
        default_factory=lambda: _env(
            "ROLODEX_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token"
        )
    )
    microsoft_client_id: str | None = field(
        default_factory=lambda: os.environ.get("ROLODEX_MICROSOFT_CLIENT_ID") or None
    )
    microsoft_client_secret: str | None = field(
        default_factory=lambda: os.environ.get("ROLODEX_MICROSOFT_CLIENT_SECRET") or None
    )
    microsoft_tenant: str = field(
        default_factory=lambda: _env("ROLODEX_MICROSOFT_TENANT", "common")
    )
    microsoft_login_url: str = field(
        default_factory=lambda: _env(
            "ROLODEX_MICROSOFT_LOGIN_URL", "https://login.microsoftonline.com"
        )
    )

    # Rate limits (rolodex.api.ratelimit): v2's per account (token) per endpoint per
    # second, per application per endpoint per second, concurrent list and delta requests
    # per account (per process); and stricter ones per client address: failed
    # authentications and /connect/* calls per minute. ROLODEX_RATE_LIMITS=off disables all.
    rate_limits: bool = field(
        default_factory=lambda: (
            _env("ROLODEX_RATE_LIMITS", "on").lower() not in ("0", "off", "false", "no")
        )
    )
    rate_limit_account: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_ACCOUNT", "50"))
    )
    rate_limit_application: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_APPLICATION", "500"))
    )
    rate_limit_list_concurrency: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_LIST_CONCURRENCY", "5"))
    )
    rate_limit_delta_concurrency: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_DELTA_CONCURRENCY", "10"))
    )
    rate_limit_auth_failures: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_AUTH_FAILURES", "20"))
    )
    rate_limit_connect: int = field(
        default_factory=lambda: int(_env("ROLODEX_RATE_LIMIT_CONNECT", "30"))
    )
    # How often each API process adds its counts to the database's and reads the sums
    # (rolodex.api.sharedcounts; PostgreSQL only), in seconds; 0 counts in each process
    # alone.
    rate_limit_share_seconds: float = field(
        default_factory=lambda: float(_env("ROLODEX_RATE_LIMIT_SHARE_SECONDS", "0.1"))
    )

    # The overall deadline for checking a provider's settings (POST /connect/authorize,
    # rolodex accounts create); where provider connections may go is
    # ROLODEX_ALLOWED_PROVIDER_HOSTS (rolodex.connectors.outbound).
    provider_check_seconds: float = field(
        default_factory=lambda: float(_env("ROLODEX_PROVIDER_CHECK_SECONDS", "10"))
    )

    @property
    def key_file(self) -> str:
        """ROLODEX_SECRET_KEY_FILE, else beside the SQLite database (``rolodex.db`` ->
        ``rolodex.key``), else (PostgreSQL) ``$XDG_CONFIG_HOME/rolodex/rolodex.key``: never
        relative to the working directory, so every command finds the same key."""
        if self.secret_key_file:
            return os.path.abspath(self.secret_key_file)
        database = sqlite_path(self.database_url)
        if database is not None:
            stem, _ = os.path.splitext(os.path.abspath(database))
            return stem + ".key"
        config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        return os.path.join(config, "rolodex", "rolodex.key")

    @property
    def read_cache_bytes(self) -> int:
        return max(0, int(self.read_cache_mb * 1024 * 1024))
