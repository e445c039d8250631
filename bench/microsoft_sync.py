"""Microsoft Graph sync against the floor: a bare client reading the same delta pages.

The mailbox is the Graph emulator of the tests (``tests/emulators/microsoft.py``), run in a
process of its own and filled with the data generator's contacts: 50,000 in 5 folders (the
default "Contacts" and four folders under it; quick mode: 10,000). Measured, side by side:

- first sync: Rolodex's sync in a long-lived process (as ``rolodex serve`` / ``rolodex
  worker`` run it; the process is started and its imports loaded before the clock starts)
  against the floor: httpx and orjson alone, one token refresh, the folder listing and every
  delta page of every folder from scratch, with the page size Rolodex asks for (the
  floor's incremental rounds keep their access token, as Rolodex does). Best of
  two each. The peak RSS of the Rolodex process during its first sync (VmHWM, polled from
  ``/proc``) against 300 MB;
- the picture checks that follow a first sync (a first sync reads no photos; every later
  round reads up to ``PICTURE_CHECKS`` of them, rolodex.sync.pictures): how many rounds
  and how long until every contact's photo was read once, for information (the mailbox
  has no photos, so each check is a 404);
- sync after one change, once those checks are done (the steady state): one contact edited
  in one folder, then Rolodex's sync against the floor reading the folder listing and the
  five deltaLinks (medians of eleven rounds); then the same with every Graph request taking
  20 ms, as over a network, for information: the emulator otherwise serves one request at
  a time, so what Rolodex gains by sending requests side by side (the folder listing, the
  deltas and the changed contact's read overlap) shows only there.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.core import Context, Row, StatusPeaks, Target, fmt_ms, sync_worker_code
from rolodex.connectors.microsoft.connector import PAGE_SIZE, PICTURE_CHECKS

CONTACTS_FULL = 50_000
CONTACTS_QUICK = 10_000
FOLDERS = 5
# Rounds of each incremental case, their medians compared: the floor of one round moves by
# half between runs of a few rounds on this two-core machine.
ROUNDS = 11
LATENCY = 0.02  # seconds a request, in the rounds that show what overlapping requests gives
BIN = Path(sys.executable).parent
SECRET = "u6fB3yQw1mN0rSx8c2Vt7Zp4Hk9Lj5Ga3Ed1Fo6Wq0I="
SCOPE = "offline_access https://graph.microsoft.com/Contacts.ReadWrite"

# The emulator's process: fills the mailbox, then answers commands on stdin ("token": a new
# refresh token; "change": edit one contact) with one line each.
MAILBOX = r"""
import sys
from bench.data import generate
from rolodex.connectors.microsoft import mapping
from tests.emulators.microsoft import GraphEmulator, CAPS

seed, size, folders = (int(a) for a in sys.argv[1:4])
graph = GraphEmulator().start()
ids = [None] + [graph.add_folder(f"Folder {n}") for n in range(1, folders)]
per = size // folders
for f, folder in enumerate(ids):
    batch = []
    for i in range(f * per, (f + 1) * per):
        body = mapping.to_graph(generate(seed, size, i, "ms").contact.fields, None)
        for name, cap in CAPS.items():
            if isinstance(body.get(name), list):
                body[name] = body[name][:cap]
        batch.append({k: v for k, v in body.items() if v not in (None, [], {}, "")})
    graph.add_contacts(batch, folder=folder)
print(graph.graph_url, graph.login_url, graph.client_id, graph.client_secret, flush=True)
n = 0
for line in sys.stdin:
    command = line.strip()
    if command == "token":
        print(graph.issue_refresh_token(), flush=True)
    elif command.startswith("latency "):
        graph.latency = float(command.split()[1])
        print("ok", flush=True)
    elif command == "change":
        n += 1
        victim = graph.in_folder(ids[1])[n % per]
        graph.edit_contact(victim.id, {"jobTitle": f"changed {n}"})
        print("ok", flush=True)
"""

# Rolodex's side: a long-lived process that syncs on request, timed over the pipe.
WORKER = sync_worker_code("f'ok {report.pictures_unchecked}'")


class Mailbox:
    def __init__(self, seed: int, size: int) -> None:
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAILBOX, str(seed), str(size), str(FOLDERS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 4:
            raise RuntimeError("the Graph emulator did not start")
        self.graph_url, self.login_url, self.client_id, self.client_secret = line

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Floor:
    """The bare client: what any correct Graph sync must read, and nothing else."""

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.http = httpx.Client(timeout=120)
        self.refresh = box.ask("token")
        self.links: dict[str, str] = {}
        self.access: str | None = None

    def _token(self) -> str:
        answer = self.http.post(
            f"{self.box.login_url}/common/oauth2/v2.0/token",
            data={
                "grant_type": "refresh_token",
                "client_id": self.box.client_id,
                "client_secret": self.box.client_secret,
                "refresh_token": self.refresh,
                "scope": SCOPE,
            },
        ).json()
        self.refresh = answer["refresh_token"]
        return str(answer["access_token"])

    def _folders(self, headers: dict[str, str]) -> list[str]:
        """The ids of every folder: the default folder first (the parent of those
        ``/me/contactFolders`` lists, as Rolodex learns it), then the folders under it."""
        found, todo = [], [f"{self.box.graph_url}/me/contactFolders?$top=100"]
        default: str | None = None
        while todo:
            page = orjson.loads(self.http.get(todo.pop(), headers=headers).content)
            for folder in page["value"]:
                default = default or folder["parentFolderId"]
                found.append(folder["id"])
                todo.append(
                    f"{self.box.graph_url}/me/contactFolders/{folder['id']}/childFolders?$top=100"
                )
            if page.get("@odata.nextLink"):
                todo.append(page["@odata.nextLink"])
        assert default is not None, "the mailbox has folders under its default one"
        return [default, *found]

    def read(self, *, first: bool) -> tuple[float, int]:
        """(seconds, items) of one sync round: from scratch, or from the deltaLinks."""
        t0 = time.perf_counter()
        if first or self.access is None:
            self.access = self._token()  # then kept, as Rolodex keeps its own
        headers = {"Authorization": f"Bearer {self.access}"}
        folders = self._folders(headers)
        delta = {"Prefer": f"odata.maxpagesize={PAGE_SIZE}", **headers}
        items = 0
        for folder in folders:
            if first:
                # (DOC contact-delta: the default folder's too, by its id)
                url = f"{self.box.graph_url}/me/contactFolders/{folder}/contacts/delta"
            else:
                url = self.links[folder]
            while True:
                page = orjson.loads(self.http.get(url, headers=delta).content)
                items += len(page["value"])
                if "@odata.nextLink" in page:
                    url = page["@odata.nextLink"]
                    continue
                self.links[folder] = page["@odata.deltaLink"]
                break
        return time.perf_counter() - t0, items


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the sync worker did not start")

    def sync(self, account_id: str) -> tuple[float, float]:
        """(seconds, peak RSS in MB of the process so far)."""
        seconds, peak, _unchecked = self.sync_counting(account_id)
        return seconds, peak

    def sync_counting(self, account_id: str) -> tuple[float, float, int | None]:
        """(seconds, peak RSS in MB of the process so far, contacts whose picture is yet
        to be checked once: None when no checks ran)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with StatusPeaks(self.proc.pid, ("VmHWM",)) as peaks:
            t0 = time.perf_counter()
            self.proc.stdin.write(account_id + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
            seconds = time.perf_counter() - t0
        word, _, unchecked = answer.partition(" ")
        if word != "ok":
            raise RuntimeError(f"worker sync: {answer or 'exited'}")
        left = None if unchecked in ("", "None") else int(unchecked)
        return seconds, peaks.mb("VmHWM"), left

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _account(box: Mailbox, env: dict[str, str]) -> str:
    out = subprocess.run(
        [str(BIN / "rolodex"), "accounts", "create", "--email", "bench@contoso.example",
         "--provider", "microsoft", "--microsoft-client-id", box.client_id,
         "--microsoft-client-secret-env", "BENCH_MS_SECRET",
         "--microsoft-refresh-token-env", "BENCH_MS_REFRESH",
         "--redirect-uri", "http://localhost:8400/callback"],
        env={**os.environ, **env, "BENCH_MS_SECRET": box.client_secret,
             "BENCH_MS_REFRESH": box.ask("token")},
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"accounts create: {out.stdout[-800:]}{out.stderr[-800:]}")
    for word in out.stdout.split():
        word = word.strip(".,:;()'\"")
        if len(word) == 25 and word.isalnum() and word.islower():
            return word
    raise RuntimeError(f"no account id in: {out.stdout[-400:]}")


def _row(case: str, ours: float, floor: float, target: float | None, data: dict[str, Any]) -> Row:
    return Row(
        benchmark="microsoft",
        case=case,
        backend="sqlite",
        rolodex=fmt_ms(ours),
        baseline=f"{fmt_ms(floor)} (floor: bare delta reads)",
        ratio=ours / floor,
        target=None if target is None else Target("<=", target),
        data={"rolodex_s": ours, "baseline_s": floor, **data},
    )


def run(ctx: Context) -> list[Row]:
    size = ctx.pick(CONTACTS_QUICK, CONTACTS_FULL)
    ctx.say(f"filling the emulated mailbox: {size} contacts in {FOLDERS} folders")
    box = Mailbox(ctx.seed, size)
    work = Path(tempfile.mkdtemp(prefix="rolodex-bench-ms-"))
    env_base = {
        "ROLODEX_SECRET_KEY": SECRET,
        "ROLODEX_MICROSOFT_GRAPH_URL": box.graph_url,
        "ROLODEX_MICROSOFT_LOGIN_URL": box.login_url,
    }
    rows: list[Row] = []
    try:
        floor = Floor(box)
        floor_first = min(floor.read(first=True) for _ in range(2))
        if floor_first[1] != size:
            raise RuntimeError(f"the floor read {floor_first[1]} contacts of {size}")
        firsts: list[tuple[float, float]] = []
        account = env = None
        for attempt in range(2):
            db = work / f"first-{attempt}.db"
            env = {**env_base, "ROLODEX_DATABASE_URL": f"sqlite:///{db}"}
            account = _account(box, env)
            worker = Worker(env)
            try:
                firsts.append(worker.sync(account))
            finally:
                worker.close()
        best = min(firsts)
        peak = max(p for _, p in firsts)
        ctx.say(f"first sync: {best[0]:.2f}s, floor {floor_first[0]:.2f}s, peak RSS {peak:.0f} MB")
        case = f"first sync, {size} contacts in {FOLDERS} folders"
        rows.append(_row(case, best[0], floor_first[0], 1.5, {"contacts": size}))
        rows.append(
            Row(
                benchmark="microsoft",
                case=f"peak RSS of the first sync, {size} contacts",
                backend="sqlite",
                rolodex=f"{peak:.0f} MB",
                baseline="300 MB",
                ratio=peak / 300,
                target=Target("<=", 1.0),
                data={"peak_mb": peak},
            )
        )
        # Incremental: one change, then the floor's round and Rolodex's, five times.
        assert account is not None and env is not None
        worker = Worker(env)
        floor.read(first=True)  # the floor's own deltaLinks, current
        ours, floors = [], []
        try:
            # The picture checks that follow the first sync, until every photo was read once.
            checks, rounds, left = 0.0, 0, None
            while left != 0:
                seconds, _peak, left = worker.sync_counting(account)
                checks += seconds
                rounds += 1
                if rounds > size // PICTURE_CHECKS + 3:
                    raise RuntimeError(f"picture checks not done after {rounds} rounds")
            ctx.say(f"picture checks after the first sync: {rounds} rounds, {checks:.2f}s")
            rows.append(
                Row(
                    benchmark="microsoft",
                    case=f"picture checks after the first sync, {size} contacts",
                    backend="sqlite",
                    rolodex=f"{fmt_ms(checks)} in {rounds} syncs",
                    baseline=f"{fmt_ms(floor_first[0])} (floor of the first sync)",
                    ratio=checks / floor_first[0],
                    note=f"{PICTURE_CHECKS} photos a sync",
                    data={"seconds": checks, "rounds": rounds},
                )
            )
            for _ in range(ROUNDS):
                box.ask("change")
                seconds, items = floor.read(first=False)
                floors.append(seconds)
                ours.append(worker.sync(account)[0])
                if items != 1:
                    ctx.notes.append(f"the floor's incremental round read {items} items")
            ours_s, floor_s = statistics.median(ours), statistics.median(floors)
            data = {"rounds": ours, "floor_rounds": floors}
            rows.append(_row("sync after 1 change", ours_s, floor_s, 1.3, data))
            # The same with each request taking LATENCY, as over a network, where the
            # emulator serves requests side by side: what overlapping them gives.
            box.ask(f"latency {LATENCY}")
            ours, floors = [], []
            for _ in range(ROUNDS):
                box.ask("change")
                floors.append(floor.read(first=False)[0])
                ours.append(worker.sync(account)[0])
            box.ask("latency 0")
            ours_s, floor_s = statistics.median(ours), statistics.median(floors)
            case = f"sync after 1 change, {LATENCY * 1000:.0f} ms a request"
            rows.append(_row(case, ours_s, floor_s, None, {"rounds": ours, "floor_rounds": floors}))
        finally:
            worker.close()
    finally:
        box.close()
    return rows
