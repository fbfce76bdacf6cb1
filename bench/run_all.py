"""Run every benchmark and write one table (figure, value, baseline, ratio, target) to bench/RESULTS.md.

    make bench        # = python -m smsapp.testing.services -- python bench/run_all.py

Each benchmark is a script that prints its figures as it goes and, as its last line, ``RESULT {json}`` with
``{"bench": name, "figures": [{"figure", "value", "unit", "baseline", "baseline_value", "ratio", "target",
"ok"}...]}``. A benchmark that fails or prints no RESULT line is reported as such; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (script, arguments for the full run, arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "segments": ("segments.py", [], ["--contacts", "100000"]),
    "importer": ("importer.py", [], ["--rows", "100000"]),
    "broadcast": ("broadcast.py", [], ["--contacts", "100000"]),
    # A real API's latency (issue 14): 150 ms and 500 ms per call, on docker-compose.yml's workers.
    "dispatch": ("dispatch.py", ["--latency-ms", "150"], ["--latency-ms", "150", "--messages", "3000"]),
    "dispatch-500ms": ("dispatch.py", ["--latency-ms", "500"], ["--latency-ms", "500", "--messages", "1500"]),
    "webhooks": (
        "webhooks.py",
        [],
        ["--callbacks", "2000", "--replies", "500", "--status-alone", "2000", "--in-request", "1000"],
    ),
    "campaigns": ("campaigns.py", [], ["--contacts", "20000"]),
    "faults": ("faults.py", [], ["--contacts", "10000"]),
    "api": ("api.py", [], ["--contacts", "100000"]),
}


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = f"{os.cpu_count()} cores ({cpu or platform.machine()})"
    return f"{platform.node()}: {cores}, {mem_gib:.0f} GiB, Python {platform.python_version()}"


def _fresh_database(name: str) -> str:
    """A new, empty database for one benchmark on the same server, so none sees another's rows."""
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    database = f"bench_{name}_{os.getpid()}"
    admin = urlunsplit(url._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    return urlunsplit(url._replace(path=f"/{database}"))


def run(name: str, script: str, args: list[str], timeout: float) -> dict[str, Any]:
    path = HERE / script
    if not path.exists():
        return {"bench": name, "error": f"{script} does not exist"}
    started = time.monotonic()
    env = {**os.environ, "DATABASE_URL": _fresh_database(name)}
    proc = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr[-4000:])
    result: dict[str, Any] = {"bench": name, "seconds": round(time.monotonic() - started, 1)}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        result["error"] = f"exit {proc.returncode}, no RESULT line"
        return result
    # A benchmark that missed a target still measured it: its exit status says so, its figures say by how much.
    result.update(json.loads(lines[-1][len("RESULT ") :]))
    return result


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| benchmark (arguments) | figure | value | baseline | baseline value | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if "error" in result:
            rows.append(f"| {result['bench']} | **did not run**: {result['error']} | | | | | | |")
            continue
        for fig in result.get("figures", []):
            unit = f" {fig['unit']}" if fig.get("unit") else ""
            met = {True: "yes", False: "**no**"}.get(fig.get("ok"), "")
            rows.append(
                f"| {result['bench']} ({result.get('args', '')}) | {fig.get('figure', '')} | "
                f"{_fmt(fig.get('value'))}{unit} | "
                f"{fig.get('baseline', '')} | {_fmt(fig.get('baseline_value'))} | {_fmt(fig.get('ratio'))} | "
                f"{fig.get('target', '')} | {met} |"
            )
    return "\n".join(rows)


def _merge_with_previous(rows: str, runs: list[str]) -> tuple[str, list[str]]:
    """Keep the previous RESULTS.md rows (and run dates) of the benchmarks this ``--only`` run did not run."""
    path = HERE / "RESULTS.md"
    if not path.exists():
        return rows, runs
    previous = path.read_text().splitlines()

    def bench_of(line: str) -> str:
        return line.removeprefix("| ").removeprefix("- ").split(" ", 1)[0].rstrip(":")

    def label_of(line: str) -> str:
        """ "dispatch (--latency-ms 150)": the benchmark and its arguments (two variants of one script differ here)."""
        return line.removeprefix("| ").split(" | ", 1)[0] if line.startswith("| ") else line[2:].split(": ", 1)[0]

    # What this run measured replaces its own variants only: one script (dispatch) runs under several names with
    # different arguments.
    fresh = {label_of(line) for line in rows.splitlines()[2:]} | {label_of(line) for line in runs}
    kept_rows = [line for line in previous if line.startswith("| ") and bench_of(line) in BENCHMARKS]
    kept_rows = [line for line in kept_rows if label_of(line) not in fresh]
    kept_runs = [line for line in previous if line.startswith("- ") and label_of(line) not in fresh]
    if not kept_runs:  # a file from before run dates were listed per benchmark: its one date holds for all
        stamp = next((line.split(" on ", 1)[1].rstrip(".") for line in previous if " on " in line), "unknown")
        kept_runs = [f"- {name}: {stamp}" for name in dict.fromkeys(bench_of(line) for line in kept_rows)]
    header, new_rows = rows.splitlines()[:2], rows.splitlines()[2:]
    order = list(BENCHMARKS)
    merged = sorted(kept_rows + new_rows, key=lambda line: order.index(bench_of(line)))
    return "\n".join(header + merged), sorted(kept_runs + runs, key=lambda line: order.index(bench_of(line)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a check that everything runs")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help='arguments for one benchmark instead of its defaults, e.g. --set "faults=--contacts 30000"',
    )
    parser.add_argument("--timeout", type=float, default=3600)
    options = parser.parse_args()
    overrides = {}
    for item in options.set:
        name, _, args = item.partition("=")
        if name not in BENCHMARKS:
            parser.error(f"--set: no benchmark called {name!r}")
        overrides[name] = shlex.split(args)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("run_all: needs PostgreSQL; run it as: make bench", file=sys.stderr)
        return 2
    results = []
    for name, (script, full, quick) in BENCHMARKS.items():
        if options.only and name not in options.only:
            continue
        print(f"== {name}", flush=True)
        args = overrides.get(name, quick if options.quick else full)
        results.append(run(name, script, args, options.timeout))
        results[-1]["args"] = " ".join(args) or "defaults"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = table(results)
    # The machine per run, not once for the file: an --only run keeps the other rows, measured elsewhere.
    runs = [f"- {r['bench']} ({r.get('args', '')}): {when}, {machine()}" for r in results]
    if options.only:
        rows, runs = _merge_with_previous(rows, runs)
    report = (
        "# Benchmark results\n\n"
        "Written by `bench/run_all.py`; each benchmark's date and machine are listed below the table.\n\n"
        "Each baseline was measured in the same run as its figure, on the same machine and servers: compare a\n"
        "figure with its baseline, not with another benchmark's figures (they may come from another machine).\n\n"
        f"{rows}\n\n## When each benchmark ran\n\n" + "\n".join(runs) + "\n"
    )
    (HERE / "RESULTS.md").write_text(report)
    print(report)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
