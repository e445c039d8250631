"""What every benchmark shares: the run context, result rows, the table and the JSON."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


@dataclass
class Target:
    op: str  # ">=" or "<="
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Row:
    """One comparison: Rolodex against its baseline, side by side in this run."""

    benchmark: str
    case: str
    backend: str
    rolodex: str  # human-readable measurement
    baseline: str
    ratio: float | None = None
    target: Target | None = None
    pending: str | None = None  # why there is no measurement
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.pending:
            return f"pending: {self.pending}"
        if self.ratio is None:
            return "error"
        if self.target is None:
            return "info (no target)"
        return "met" if self.target.met(self.ratio) else "NOT MET"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = str(self.target) if self.target else None
        out["status"] = self.status
        return out


@dataclass
class Context:
    mode: str  # quick | full
    seed: int
    postgres: str | None  # URL, or None when no server answers
    notes: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    @property
    def backends(self) -> list[str]:
        return ["sqlite", "postgres"] if self.postgres else ["sqlite"]

    def say(self, text: str) -> None:
        print(f"  {text}", flush=True)


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def table(rows: list[Row]) -> str:
    header = ("case", "backend", "rolodex", "baseline", "ratio", "target", "status")
    lines = [
        (
            r.case,
            r.backend,
            r.rolodex,
            r.baseline,
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            str(r.target) if r.target else "-",
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    out = []
    for i, line in enumerate([header, *lines]):
        out.append("  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(name: str, ctx: Context, rows: list[Row], seconds: float) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{name}-{ctx.mode}-{stamp}.json"
    payload = {
        "benchmark": name,
        "mode": ctx.mode,
        "seed": ctx.seed,
        "seconds": round(seconds, 2),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "notes": ctx.notes,
        "rows": [r.as_json() for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


class StatusPeaks:
    """Peaks of ``/proc/<pid>/status`` fields (kB) of a child, polled every 50 ms from a
    thread while the ``with`` block runs: ``VmHWM`` is the high-water mark of the child's
    own address space, which ``ru_maxrss`` is not (it survives fork and exec)."""

    def __init__(self, pid: int, fields: tuple[str, ...] = ("VmHWM", "RssAnon")) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self.kb: dict[str, int] = dict.fromkeys(fields, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def mb(self, name: str) -> float:
        return self.kb[name] / 1024

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for line in self.status.read_text().splitlines():
                    key = line.split(":", 1)[0]
                    if key in self.kb:
                        self.kb[key] = max(self.kb[key], int(line.split()[1]))
            except (OSError, ValueError):
                return  # the child is gone
            self._stop.wait(0.05)

    def __enter__(self) -> StatusPeaks:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


def sync_worker_code(answer: str) -> str:
    """The code of a long-lived sync process (as ``rolodex serve`` and ``rolodex worker``
    run syncs): reads an account id per line, syncs it, prints ``answer`` (an f-string
    expression of ``report``) or ``busy``. With ``BENCH_PROFILE=<prefix>`` each sync's
    cProfile statistics go to ``<prefix>.<n>``, to see where a round's time goes."""
    return (
        "import os, sys, cProfile\n"
        "from rolodex.cli.common import open_store, settings_for\n"
        "from rolodex.cli.sync import make_runner\n"
        "settings = settings_for(None)\n"
        "runner = make_runner(settings, open_store(settings))\n"
        "profiles = os.environ.get('BENCH_PROFILE')\n"
        "print('ready', flush=True)\n"
        "for n, line in enumerate(sys.stdin):\n"
        "    profile = cProfile.Profile() if profiles else None\n"
        "    if profile: profile.enable()\n"
        "    report = runner.run(line.strip())\n"
        "    if profile: profile.disable(); profile.dump_stats(f'{profiles}.{n}')\n"
        f"    print({answer} if report is not None else 'busy', flush=True)\n"
    )
