"""Run one benchmark: `python -m benchmarks NAME` calls `benchmarks.NAME.main()`."""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isidentifier():
        print("usage: python -m benchmarks NAME   (e.g. durable)", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"benchmarks.{argv[0]}")
    except ModuleNotFoundError as error:
        if error.name != f"benchmarks.{argv[0]}":
            raise
        print(f"no benchmark named {argv[0]!r}", file=sys.stderr)
        return 2
    result = module.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
