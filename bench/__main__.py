"""``python -m bench --quick|--full [names...]``: run the benchmarks, print each table and a
summary of every ratio against its target, write JSON under bench/results/."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback

from bench.core import Context, Row, table, write_json
from bench.data import DEFAULT_SEED, postgres_available, postgres_url

# The CardDAV servers of the benchmarks run on this machine, where providers may not be
# unless allowed (rolodex.connectors.outbound); the processes started inherit this.
os.environ.setdefault("ROLODEX_ALLOWED_PROVIDER_HOSTS", "127.0.0.1,localhost,::1")

BENCHMARKS = {
    "list": "bench.list_throughput",
    "filters": "bench.filters",
    "writes": "bench.writes",
    "scale": "bench.scale",
    "carddav": "bench.carddav_sync",
    "memory": "bench.memory",
    "ratelimit": "bench.rate_limits",
    "google": "bench.google_sync",
    "microsoft": "bench.microsoft_sync",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    mode.add_argument("--full", action="store_true", help="the sizes of the issue (default)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="name",
        help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}",
    )
    args = parser.parse_args(argv)
    ctx = Context(
        mode="quick" if args.quick else "full",
        seed=args.seed,
        postgres=None if args.no_postgres else postgres_available(),
    )
    started = time.perf_counter()
    print(f"Rolodex benchmarks, {ctx.mode} mode, seed {ctx.seed}")
    if ctx.postgres:
        print(f"PostgreSQL: {ctx.postgres}")
    elif args.no_postgres:
        print("PostgreSQL: skipped (--no-postgres); SQLite only")
    else:
        print(f"PostgreSQL: not reachable at {postgres_url()} (BENCH_POSTGRES_URL); SQLite only")
    everything: list[Row] = []
    failed = False
    for name in args.names or list(BENCHMARKS):
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        ctx.notes = []
        try:
            module = importlib.import_module(BENCHMARKS[name])
            rows: list[Row] = module.run(ctx)
        except Exception:
            traceback.print_exc()
            failed = True
            continue
        seconds = time.perf_counter() - t0
        for note in ctx.notes:
            print(f"  note: {note}")
        print(table(rows))
        path = write_json(name, ctx, rows, seconds)
        print(f"  ({seconds:.0f}s; {path.relative_to(path.parents[2])})")
        everything.extend(rows)
    print("\n== summary: every ratio against its target ==")
    print(table(everything))
    unmet = [r for r in everything if r.status == "NOT MET"]
    total = time.perf_counter() - started
    print(
        f"\n{len(everything)} rows, {sum(r.status == 'met' for r in everything)} targets met, "
        f"{len(unmet)} not met, {sum(r.pending is not None for r in everything)} pending; "
        f"{total:.0f}s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
