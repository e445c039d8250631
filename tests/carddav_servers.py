"""Real CardDAV servers (Radicale, Xandikos) as subprocesses, for tests and benchmarks.

Usage (``from tests.carddav_servers import RadicaleServer, XandikosServer, vcard``)::

    with RadicaleServer() as server:           # or XandikosServer()
        book = server.new_addressbook()        # fresh, empty address book URL
        server.put_card(book + "a.vcf", data)  # act as "another client"
        server.stop(); server.start()          # same port, same data

Each server runs from the current interpreter (``sys.executable -m ...``) in its own temporary
directory on a free port on 127.0.0.1, and is killed on exit. ``base_url`` is the server root
(for discovery), ``username``/``password`` the credentials tests should use.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

MKCOL_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:mkcol xmlns:d="DAV:" xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>'
    "<d:resourcetype><d:collection/><cr:addressbook/></d:resourcetype>"
    "<d:displayname>{name}</d:displayname></d:prop></d:set></d:mkcol>"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def vcard(uid: str, fn: str, *, extra: str = "") -> bytes:
    """A minimal vCard 3.0 (the version every CardDAV server must accept)."""
    name = fn.split()
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"UID:{uid}",
        f"FN:{fn}",
        f"N:{name[-1]};{' '.join(name[:-1])};;;",
        *([extra] if extra else []),
        "END:VCARD",
        "",
    ]
    return "\r\n".join(lines).encode()


class DavServer:
    """A server subprocess that can be stopped and restarted on the same port and data."""

    name = "dav"
    username = "test"
    password = "secret"
    home_path = "/"  # where new address books are created

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix=f"rolodex-{self.name}-")) if root is None else root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.root / "server.log"
        self.http = httpx.Client(auth=(self.username, self.password), timeout=10)

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def default_addressbook(self) -> str:
        raise NotImplementedError

    # --- Lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        if self._proc is not None:
            return
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                self.after_start()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def after_start(self) -> None:
        """Hook: the port accepts connections."""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        self.stop()
        self.http.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # --- Acting as another client ------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def new_addressbook(self, displayname: str | None = None) -> str:
        """A fresh, empty address book; its URL ends with "/"."""
        slug = uuid.uuid4().hex[:12]
        url = self.url(f"{self.home_path}{slug}/")
        resp = self.http.request(
            "MKCOL",
            url,
            content=MKCOL_BODY.format(name=displayname or f"Book {slug}"),
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )
        assert resp.status_code == 201, (resp.status_code, resp.text)
        return url

    def put_card(self, url: str, data: bytes, etag: str | None = None) -> str:
        """PUT without preconditions unless ``etag``; returns the new ETag."""
        headers = {"Content-Type": "text/vcard; charset=utf-8"}
        if etag:
            headers["If-Match"] = etag
        resp = self.http.put(url, content=data, headers=headers)
        assert resp.status_code in (201, 204), (resp.status_code, resp.text)
        etag: str = resp.headers.get("ETag", "")
        return etag

    def delete_card(self, url: str) -> None:
        resp = self.http.delete(url)
        assert resp.status_code in (200, 204), (resp.status_code, resp.text)


class RadicaleServer(DavServer):
    """Radicale 3, file storage. ``auth`` None: any user/password; a dict: htpasswd (plain)
    with these users. ``max_sync_token_age`` in seconds (Radicale's default is 30 days)."""

    name = "radicale"

    def __init__(
        self,
        root: Path | None = None,
        *,
        max_sync_token_age: int | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root)
        self.home_path = f"/{self.username}/"
        self.users = users
        lines = [
            "[server]",
            f"hosts = 127.0.0.1:{self.port}",
            # Radicale sleeps after 401/403 and 5xx answers by default, which slows tests.
            "delay_on_error = 0",
            "[auth]",
            "delay = 0",
        ]
        if users is None:
            lines.append("type = none")
        else:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            if self.username in users:
                self.password = users[self.username]
                self.http.auth = httpx.BasicAuth(self.username, self.password)
            lines += [
                "type = htpasswd",
                f"htpasswd_filename = {htpasswd}",
                "htpasswd_encryption = plain",
            ]
        lines += ["[storage]", f"filesystem_folder = {self.root / 'collections'}"]
        if max_sync_token_age is not None:
            lines.append(f"max_sync_token_age = {max_sync_token_age}")
        lines += ["[logging]", "level = warning"]
        self.config = self.root / "radicale.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self._default: str | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "radicale", "--config", str(self.config)]

    @property
    def default_addressbook(self) -> str:
        # Radicale has none until a client makes one.
        if self._default is None:
            self._default = self.new_addressbook("Contacts")
        return self._default


class XandikosServer(DavServer):
    """Xandikos with ``--defaults`` (no auth; single user, principal /user/)."""

    name = "xandikos"
    home_path = "/user/contacts/"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "xandikos.web",
            "--defaults",
            "-d",
            str(self.root / "data"),
            "-l",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--no-detect-systemd",
        ]

    @property
    def default_addressbook(self) -> str:
        return self.url("/user/contacts/addressbook/")


SERVERS: dict[str, type[DavServer]] = {"radicale": RadicaleServer, "xandikos": XandikosServer}
