"""Run one benchmark: `python -m benchmarks NAME [ARGS]` calls `benchmarks.NAME.main()`.

The remaining arguments are left in `sys.argv` for the benchmark's own parser.
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isidentifier():
        print("usage: python -m benchmarks NAME [ARGS]   (e.g. durable)", file=sys.stderr)
        return 2
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
