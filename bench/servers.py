"""Servers as subprocesses (uvicorn, one worker unless asked, the same flags for Rolodex and
baseline; or ``rolodex serve`` itself), and wrk, the load generator (installed from Debian's
packages when missing)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from bench.apps import UVICORN_SETTINGS

ROOT = Path(__file__).resolve().parent
# The same settings for every server we measure (bench.apps.UVICORN_SETTINGS), as flags.
UVICORN_FLAGS = [
    "--loop",
    UVICORN_SETTINGS["loop"],
    "--http",
    UVICORN_SETTINGS["http"],
    "--no-access-log",
    "--log-level",
    UVICORN_SETTINGS["log_level"],
    "--backlog",
    str(UVICORN_SETTINGS["backlog"]),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``python -m uvicorn bench.apps:<factory> --factory`` on a free port, with
    ``workers`` processes (uvicorn's supervisor when more than one)."""

    # Where the server's stdout goes: None, its log file (a subclass may discard it).
    stdout: int | None = None

    def __init__(self, factory: str, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.factory = factory
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT.parent), self.env.get("PYTHONPATH", "")) if p
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="bench-server-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU time the server's process has used so far (user and system; one worker's:
        with ``workers`` above one, the supervisor's only)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def command(self) -> list[str]:
        if self.workers > 1:  # as rolodex serve --workers does (bench.apps)
            return [
                sys.executable,
                "-m",
                "bench.apps",
                self.factory,
                str(self.port),
                str(self.workers),
            ]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.apps:{self.factory}",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *UVICORN_FLAGS,
        ]

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=self.log if self.stdout is None else self.stdout,
            stderr=subprocess.STDOUT if self.stdout is None else self.log,
            cwd=ROOT.parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.factory} exited at start:\n{self.tail()}")
            if self.ready():
                if self.workers > 1:
                    self._settle(deadline)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.factory} did not start within {timeout}s:\n{self.tail()}")

    def _settle(self, deadline: float) -> None:
        """Until every worker process has started and none is still importing (using CPU
        while nothing is asked of it): the supervisor's socket accepts connections before
        any worker could answer them."""
        before: list[float] = []
        while time.monotonic() < deadline:
            time.sleep(0.5)
            pids = self.processes()
            now = [cpu_seconds(p) for p in pids]
            if len(pids) == self.workers == len(before) and all(
                b - a < 0.05 for a, b in zip(before, now, strict=True)
            ):
                return
            before = now
        raise RuntimeError(f"{self.factory}: its workers did not settle:\n{self.tail()}")

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def processes(self) -> list[int]:
        """The processes that answer requests: the supervisor's children when there is
        one, else the server itself."""
        if self.workers == 1:
            return [self.pid]
        # Not multiprocessing's resource tracker, which the supervisor starts as well.
        return [p for p in children(self.pid) if b"spawn_main" in _cmdline(p)]

    def tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def rolodex_server(database_url: str, env: dict[str, str] | None = None) -> Server:
    """Rolodex with its rate limits on but far above any benchmark's load (one token, many
    connections), so they cost what they cost and refuse nothing; ``env`` overrides."""
    return Server(
        "rolodex_app",
        {
            "ROLODEX_DATABASE_URL": database_url,
            "ROLODEX_SECRET_KEY": "u6fB3yQw1mN0rSx8c2Vt7Zp4Hk9Lj5Ga3Ed1Fo6Wq0I=",
            "ROLODEX_RATE_LIMIT_ACCOUNT": "1000000000",
            "ROLODEX_RATE_LIMIT_LIST_CONCURRENCY": "1000",
            **(env or {}),
        },
    )


class RolodexServe(Server):
    """``rolodex serve --workers N`` as a user runs it; its access log (stdout) is
    discarded, its other logs (stderr) kept in the server's log file."""

    stdout = subprocess.DEVNULL

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "rolodex",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--sync-interval",
            "0",
            "--no-demo",
        ]


def rolodex_serve(database_url: str, workers: int) -> RolodexServe:
    """``rolodex serve --workers N`` with the same settings as ``rolodex_server``."""
    env = rolodex_server(database_url).env
    return RolodexServe("rolodex serve", env, workers)


def baseline_server(body: bytes, workers: int = 1, list_body: bytes | None = None) -> Server:
    """The bare app answering ``body`` (``list_body`` to requests with a query string)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-body-"))
    (folder / "body.json").write_bytes(body)
    env = {"BENCH_BODY_FILE": str(folder / "body.json")}
    if list_body is not None:
        (folder / "list.json").write_bytes(list_body)
        env["BENCH_LIST_BODY_FILE"] = str(folder / "list.json")
    return Server("baseline_app", env, workers)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_seconds(pid: int) -> float:
    """User and system CPU ``pid`` has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- wrk ----------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package (as root) when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("wrk is missing: install it (apt-get install wrk) and run again")
    print("  wrk is missing: installing Debian's package (apt-get install -y wrk)...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, **quiet)  # type: ignore[call-overload]
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get install wrk did not provide wrk")
    return found


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    errors: int
    latency_p50_ms: float | None
    output: str


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60000}[unit]


def wrk(
    url: str,
    script: str,
    seconds: float,
    *,
    connections: int = 8,
    threads: int = 1,
    token: str | None = None,
) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    cmd = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        lua,
    ]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    cmd.append(url)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    if not total or not rps:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    dur = float(total.group(2)) * {"s": 1.0, "ms": 0.001, "m": 60.0}.get(total.group(3), 1.0)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=dur,
        rps=float(rps.group(1)),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        latency_p50_ms=_ms(p50.group(1)) if p50 else None,
        output=out,
    )


def get(url: str, token: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        resp = client.get(url, headers={"Authorization": f"Bearer {token}"})
        resp.raise_for_status()
        return resp
