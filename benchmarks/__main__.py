"""Run one benchmark: `python -m benchmarks NAME [ARGS]` calls `benchmarks.NAME.main()`.

The remaining arguments are left in `sys.argv` for the benchmark's own parser (every one takes
`--help`). Without a name, or with `--help`, it lists the benchmarks. A SIGTERM stops a
benchmark as Ctrl-C does, so that its temporary folders are removed.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType

BENCHMARKS = {
    "durable": "the devhost's Durable engine: chained, fanned-out and concurrent orchestrations",
    "ingest": "event ingestion: the ingest function, and end to end over HTTP",
    "eventlog": "the local Event Hubs log: appends and reads, alone and beside a busy thread",
    "pipeline": "gold over 10 M silver rows: the orchestration against DuckDB alone",
    "landing": "a large CSV through file landing, with its peak memory",
    "documents": "the embedded document store: reads, upserts, patches, the change feed",
    "auth": "token checks, the guarded no-op route, audit appends",
    "scoring": "the models: ONNX, scored ingestion, PR-AUC, the HTTP routes, alert latency",
    "drift": "model monitoring: false alarms, detection of a shift, a run against DuckDB's read",
    "lifecycle": "one retraining through gate, approval and canary, by step, beside a training",
    "gateway": "the AI gateway against a direct call, its limiter, streamed usage, the SQL gate",
}


def usage() -> str:
    lines = ["usage: python -m benchmarks NAME [ARGS]   (NAME --help for its options)", ""]
    lines += [f"  {name:<9} {what}" for name, what in BENCHMARKS.items()]
    lines += ["", "  (the traffic simulator: python -m benchmarks.simulate --help)"]
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or not argv[0].isidentifier():
        print(usage(), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        module = importlib.import_module(f"benchmarks.{argv[0]}")
    except ModuleNotFoundError as error:
        if error.name != f"benchmarks.{argv[0]}":
            raise
        print(f"no benchmark named {argv[0]!r}", file=sys.stderr)
        return 2
    sys.argv = [f"python -m benchmarks {argv[0]}", *argv[1:]]
    result = module.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
