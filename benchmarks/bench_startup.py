"""CLI start-up: ``aesdata --help`` and ``aesdata status`` against the eager imports the CLI used to do.

Each case runs in a fresh interpreter ``RUNS`` times, the cases taking turns; the table gives wall time
and the CPU time of the child (user + system, from ``RUSAGE_CHILDREN``), minimum and median. On a busy
machine the wall time includes waiting for a core; the CPU time is what the start-up costs on an idle
one. Two references run beside the code users run: the same command with typer building the whole
command tree up front (every subcommand registered on the root app, as before the lazy group of
:mod:`aesdata.cli._lazy`), and the baseline, ``--help`` after importing every stage module first (what
each command paid before the stages were imported inside the commands); the floors are a bare
interpreter and ``import typer``.

Target (issue 13): ``--help`` and ``status`` in at most 0.5 s.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "9"))

#: Every stage module the CLI modules imported at their top before start-up was made lazy.
EAGER = ("aesdata.annotate.pull", "aesdata.annotate.push", "aesdata.annotate.server", "aesdata.annotate.status",
         "aesdata.cot.stage", "aesdata.evaluate.dataset", "aesdata.evaluate.run", "aesdata.evaluate.compare",
         "aesdata.evaluate.export", "aesdata.generate.stage", "aesdata.generate.demo_sources", "aesdata.ingest",
         "aesdata.dedup", "aesdata.publish.stage", "aesdata.publish.versions", "aesdata.status")


def _cli(*args: str, before: tuple[str, ...] = (), whole_tree: bool = False) -> list[str]:
    code = "".join(f"import {m}\n" for m in before)
    code += "import sys\nfrom aesdata.cli import main as cli\n"
    if whole_tree:
        code += "from aesdata.cli._lazy import eager\ncli.app = eager(cli.app)\n"
    code += f"sys.argv = ['aesdata', *{list(args)!r}]\ncli.main()\n"
    return [sys.executable, "-c", code]


def measure(cmd: list[str]) -> tuple[float, float]:
    """One run: wall time and the child's CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(Path(tmp) / "ws")
        subprocess.run(_cli("init", ws), stdout=subprocess.DEVNULL, check=True)
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "import typer (floor)": [sys.executable, "-c", "import typer"],
            "aesdata --help": _cli("--help"),
            "aesdata status": _cli("-w", ws, "status"),
            "aesdata status --json": _cli("-w", ws, "status", "--json"),
            "--help, whole command tree built": _cli("--help", whole_tree=True),
            "status, whole command tree built": _cli("-w", ws, "status", whole_tree=True),
            "--help after eager stage imports (baseline)": _cli("--help", before=EAGER),
        }
        print(f"{RUNS} runs each, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print("| case | wall min | wall median | CPU min | CPU median |\n|---|---|---|---|---|")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(RUNS):  # the cases take turns, so a load that changes meanwhile weighs on all alike
            for name, cmd in cases.items():
                runs[name].append(measure(cmd))
        results = {}
        for name, samples in runs.items():
            walls, cpus = [w for w, _ in samples], [c for _, c in samples]
            results[name] = min(cpus)
            print(f"| {name} | {min(walls):.3f} s | {statistics.median(walls):.3f} s | {min(cpus):.3f} s | "
                  f"{statistics.median(cpus):.3f} s |")
        base = results["--help after eager stage imports (baseline)"]
        for name in ("aesdata --help", "aesdata status", "aesdata status --json"):
            print(f"{name}: {base / results[name]:.1f}x less CPU than the baseline")
        for name, whole in (("aesdata --help", "--help, whole command tree built"),
                            ("aesdata status", "status, whole command tree built")):
            print(f"{name}: {results[whole] / results[name]:.2f}x less CPU than with the whole tree built")


if __name__ == "__main__":
    main()
