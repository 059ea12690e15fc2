"""Read one CSV through `shared.files` and print its rows/s and the process's peak RSS (JSON)."""

from __future__ import annotations

import json
import resource
import sys
import time

from shared.files.reader import read_records


def _peak_rss_kib() -> int:
    """This process's own peak RSS. Not ru_maxrss: that keeps the forking parent's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for entry in status:
            if entry.startswith("VmHWM:"):
                return int(entry.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(path: str) -> None:
    started = time.perf_counter()
    rows = rejects = 0
    with open(path, "rb") as stream:
        for chunk in read_records(stream, path, chunk_records=5000):
            rows += len(chunk.records)
            rejects += len(chunk.rejects)
    elapsed = time.perf_counter() - started
    peak_kib = _peak_rss_kib()
    figures = {"rows": rows, "rejects": rejects, "seconds": elapsed}
    figures |= {"rows_per_s": rows / elapsed, "peak_rss_mb": peak_kib / 1024}
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1])
