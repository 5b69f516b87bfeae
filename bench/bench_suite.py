"""The default test suite (`make test`'s command) at a base revision against HEAD's.

The suite's wall time is the sum of what its two workers do, what the processes they start do,
and what the machine waits on (the disk, a build the other worker needs, the slower worker at
the end), and all three drift with other load on shared cores by more than most changes
save. So the two revisions run interleaved (base, this, base, this, ...) in one command, and
each run reports, besides its wall time, the CPU the whole machine spent busy and idle during
it (/proc/stat): a change that moves work off the critical path shows as less idle; one that
removes work, as less busy.

pytest keeps the last three sessions' temporary directories and deletes older ones at the end
of a session, so a developer's machine always holds three (~500 MB): `--prime 3` (runs first,
not reported) puts the machine in that steady state; the default, no priming, after clearing
/tmp/pytest-of-$USER, measures a fresh CI runner. A run takes about four minutes on 2 cores.

Both revisions run with this checkout's venv, each from a git worktree of its own (created and
removed here), so only the committed code and tests differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import ROOT, median

SUITE = ("-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q")


def cpu_seconds() -> tuple[float, float]:
    """Busy and idle CPU seconds of the whole machine so far (0, 0 where /proc is absent)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[:7])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, (idle + iowait) / tick


def run_suite(tree: Path) -> dict[str, float | str]:
    """One run of the default suite in `tree`: wall, busy and idle CPU, pytest's summary."""
    busy0, idle0 = cpu_seconds()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *SUITE],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    busy1, idle1 = cpu_seconds()
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else proc.stderr.strip()[-200:]
    if proc.returncode != 0:
        summary = f"FAILED (exit {proc.returncode}): {summary}"
    return {"wall": wall, "busy": busy1 - busy0, "idle": idle1 - idle0, "summary": summary}


def short_rev(rev: str) -> str:
    """`rev` as a short commit id; exits naming it when git does not know it."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--short", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"bench_suite: {rev!r} is not a commit of {ROOT}")
    return proc.stdout.strip()


def worktree(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "worktree", "add", "--quiet", "--detach", str(into), rev], cwd=ROOT, check=True
    )
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", default="HEAD~1", help="the baseline revision (git rev)")
    parser.add_argument("--rounds", type=int, default=2, help="base/this pairs reported")
    parser.add_argument("--prime", type=int, default=0, help="unreported runs first")
    args = parser.parse_args()
    this_rev, base_rev = short_rev("HEAD"), short_rev(args.base)
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        trees = {
            "base": worktree(base_rev, Path(tmp) / "base"),
            "this": worktree(this_rev, Path(tmp) / "this"),
        }
        try:
            order = ["base", "this"] * args.rounds
            for i in range(args.prime):
                print(f"priming run {i + 1}: {run_suite(trees[order[i % 2]])['summary']}")
            results: dict[str, list[dict[str, float | str]]] = {"base": [], "this": []}
            for label in order:
                result = run_suite(trees[label])
                results[label].append(result)
                rev = base_rev if label == "base" else this_rev
                print(
                    f"{label:4} {rev}  wall {result['wall']:6.1f} s  busy {result['busy']:6.1f}"
                    f" core-s  idle {result['idle']:5.1f} core-s  {result['summary']}"
                )
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT)
    print(f"\nmedians over {args.rounds} interleaved round(s), {this_rev} against {base_rev}:")
    for key in ("wall", "busy", "idle"):
        base = median([float(r[key]) for r in results["base"]])
        this = median([float(r[key]) for r in results["this"]])
        ratio = this / base if base else float("nan")
        print(f"  {key:4}  base {base:6.1f}  this {this:6.1f}  ratio {ratio:.2f}x")
    if any(str(r["summary"]).startswith("FAILED") for rs in results.values() for r in rs):
        print("a run failed: its times are not comparable", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
