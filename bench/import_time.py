"""Import time of each handler at cold start: what a new container pays before its first line runs.

Each figure is the median over fresh processes of importing one handler module (``functions/*/app.py``),
beside the reference measured in the same run: importing boto3 alone, which every Python function on Lambda
pays. Pass ``--runs`` for more processes; ``-X importtime`` shows where the time goes::

    python -m bench.import_time --runs 15
    python -X importtime -c "import sys; sys.path.insert(0, 'functions/score_features'); import app"
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from clip_local.paths import REPO_ROOT

PROBE = """
import json, sys, time
start = time.perf_counter()
{statement}
elapsed = (time.perf_counter() - start) * 1000
print(json.dumps({{"ms": elapsed, "modules": len(sys.modules)}}))
"""
TARGETS = {
    "boto3 alone (reference)": "import boto3",
    "score_features (zip + layer)": "sys.path.insert(0, 'functions/score_features'); import app",
    "rescore_results (zip + layer)": "sys.path.insert(0, 'functions/rescore_results'); import app",
    "classify_upload (image)": "sys.path.insert(0, 'functions/classify_upload'); import app",
    "backfill_batch (image)": "sys.path.insert(0, 'functions/backfill_batch'); import app",
}


def measure(statement: str, runs: int) -> tuple[float, int]:
    """Median milliseconds and the module count, over ``runs`` fresh interpreters (alternated by the caller)."""
    times, modules = [], 0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(statement=statement)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(figures["ms"])
        modules = figures["modules"]
    return statistics.median(times), modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    results = {name: measure(statement, args.runs) for name, statement in TARGETS.items()}
    print(f"| handler | import, median of {args.runs} fresh processes | modules loaded |")
    print("| --- | --- | --- |")
    for name, (ms, modules) in results.items():
        print(f"| {name} | {ms:.0f} ms | {modules} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
