"""Run every benchmark: ``python -m benchmarks [name]``."""

from __future__ import annotations

import sys

from benchmarks import (
    combine,
    delivery,
    indicators,
    latency,
    participants_import,
    signoff,
    workspace,
)

BENCHMARKS = {
    "latency": latency.main,
    "import": participants_import.main,
    "indicators": indicators.main,
    "delivery": delivery.main,
    "workspace": workspace.main,
    "signoff": signoff.main,
    "combine": combine.main,
}

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(BENCHMARKS)
    for name in chosen:
        if name not in BENCHMARKS:
            sys.exit(f"unknown benchmark {name!r} (have: {', '.join(BENCHMARKS)})")
        BENCHMARKS[name]()
