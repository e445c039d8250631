"""Outbound safety: where provider connections may go, and how long checking one may take.

Provider URLs come from API clients (``POST /connect/authorize``), so a server that
connected wherever it was told would scan its own network for them. Every connection a
provider client opens goes through ``GuardedBackend``: the host is resolved here, every
address it resolves to must be public (globally routable) unless the operator allows it,
and the connection is made to the very address that was checked (a name cannot resolve to
a public address for the check and a private one for the connection).

``ROLODEX_ALLOWED_PROVIDER_HOSTS`` (comma list) allows more: host names (``carddav.lan``;
``.lan`` takes its subdomains), addresses and networks (``10.0.0.0/8``, ``::1``), or ``*``
for anything. It is read when a connection is made.

``deadline(seconds)`` bounds everything a provider client does in this thread meanwhile:
each connect, read and write waits at most until the deadline, so a server that accepts
and never answers costs the verification its deadline, not the client's 30-second timeouts
and retries.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from rolodex.domain.errors import BadCredentials, ProviderUnreachable

log = logging.getLogger(__name__)

ENV = "ROLODEX_ALLOWED_PROVIDER_HOSTS"

# How long a provider connection is kept open unused: longer than the poll interval, so
# that the next sync of an account, whose connector a long-lived worker keeps
# (``rolodex.sync.connections``), goes out on the same connection instead of a new TCP and
# TLS handshake (httpx's default is 5 seconds). A server that closed it meanwhile is seen
# before it is used, and a new one made.
KEEPALIVE_SECONDS = 120.0
LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_SECONDS
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "outbound_deadline", default=None
)


class NotAllowed(httpcore.ConnectError):
    """The destination is not one this server may connect to."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None) -> float | None:
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise httpcore.ConnectTimeout("the overall deadline passed")
    return left if timeout is None else min(timeout, left)


class Policy:
    """What ROLODEX_ALLOWED_PROVIDER_HOSTS allows beyond public addresses."""

    def __init__(self, text: str) -> None:
        self.anything = False
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[IPNetwork] = []
        for entry in (e.strip().lower() for e in text.split(",")):
            if not entry:
                continue
            if entry == "*":
                self.anything = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("."):
                self.suffixes.append(entry)
            else:
                self.names.add(entry.rstrip("."))

    @classmethod
    def from_environment(cls) -> Policy:
        return cls(os.environ.get(ENV, ""))

    def allows_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return (
            self.anything
            or host in self.names
            or any(host.endswith(s) or host == s[1:] for s in self.suffixes)
        )

    def allows_address(self, address: IPAddress) -> bool:
        if self.anything or any(address in network for network in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return self.allows_address(address.ipv4_mapped)
            if address in _SITE_LOCAL:
                return False  # deprecated, and "global" to the ipaddress module
            embedded = _embedded_ipv4(address)
            if embedded is not None and not self.allows_address(embedded):
                return False
        return address.is_global and not address.is_multicast


# IPv6 addresses that carry an IPv4 address a gateway or the kernel may deliver to: the
# ipaddress module calls them global whatever they carry, so "[64:ff9b::a9fe:a9fe]" was a
# way to 169.254.169.254 through a NAT64 gateway (an IPv6-only cluster's usual setup).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _IPV4_COMPATIBLE or any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# Said with a refusal (to the command line and the log; API clients are told less): a
# newcomer's CardDAV server on this machine is refused until the setting allows it.
_HINT = f" (unless {ENV} allows it)"


def allowed_addresses(host: str, port: int, policy: Policy | None = None) -> list[str]:
    """The addresses ``host`` resolves to, each allowed; NotAllowed when none may be used
    (any address that is not allowed makes the whole name refused: a name that resolves
    to a private address is not a public server)."""
    policy = policy or Policy.from_environment()
    named = policy.allows_name(host)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if named or policy.allows_address(literal):
            return [str(literal)]
        raise NotAllowed(f"{host} is not an address this server may connect to{_HINT}")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not named and not all(policy.allows_address(ipaddress.ip_address(a)) for a in addresses):
        raise NotAllowed(f"{host} resolves to an address this server may not connect to{_HINT}")
    return addresses


class _BoundedStream(httpcore.NetworkStream):
    """A stream whose every wait ends at the thread's deadline, if one is set."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout))
        return _BoundedStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = allowed_addresses(host, port)
        error: Exception | None = None
        for address in addresses:  # connect to what was checked, never re-resolve
            try:
                stream = super().connect_tcp(
                    address, port, _bounded(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
                continue
            return _BoundedStream(stream)
        assert error is not None
        raise error


def guarded_transport(verify: ssl.SSLContext | bool = True) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through GuardedBackend."""
    transport = httpx.HTTPTransport(verify=verify, limits=LIMITS)
    # httpx builds its connection pool without a way to pass a network backend.
    transport._pool._network_backend = GuardedBackend()
    return transport


# --- Verifying a provider's settings -------------------------------------------------------

Verify = Callable[[str, dict[str, str]], None]
UNREACHABLE = "could not reach the server"
REFUSED = "the server refused these credentials"


def checked(verify: Verify, seconds: float) -> Verify:
    """``verify`` within an overall deadline of ``seconds``, failing with plain messages
    (the API shows them to whoever sent the settings): never socket details, which would
    tell an open port from a closed one. The details are logged for the operator."""

    def run(provider: str, settings: dict[str, str]) -> None:
        try:
            with deadline(seconds):
                verify(provider, settings)
        except BadCredentials as error:
            log.info("%s refused the credentials: %s", provider, error.message)
            raise BadCredentials(REFUSED) from None
        except ProviderUnreachable as error:
            log.info("%s could not be reached: %s", provider, error.message)
            raise ProviderUnreachable(UNREACHABLE) from None

    return run
