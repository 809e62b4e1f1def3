"""``make bench``: run every ``benchmarks/bench_*.py`` in turn; each prints its own table of figures.

Benchmarks print figures and ratios against a baseline measured in the same run; they never
pass or fail on time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    only = set(sys.argv[1:])
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that crashed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
