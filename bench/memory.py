"""5. Memory: peak resident memory of the server while it syncs 100,000 cards (target at
most 300 MB, flat in the number of cards). Not wired yet: reported as pending."""

from __future__ import annotations

from bench.core import Context, Row, Target


def run(ctx: Context) -> list[Row]:
    return [
        Row(
            benchmark="memory",
            case=f"peak RSS syncing {n:,} cards from Radicale",
            backend="sqlite",
            rolodex="-",
            baseline="300 MB",
            target=Target("<=", 1.0),
            pending="not wired to the sync engine yet (rolodex sync landed during this round)",
        )
        for n in (10_000, 100_000)
    ]
