"""The smoke test: does the bundle work where it will run, and does it say what it said offline?

The gate runs it before any proposal, in a *fresh* process with the target's serving thread
settings: one forked from the warm stage runner (`pipeline.run.run_forked`: libraries imported,
nothing of any model loaded), else a new interpreter. Its environment carries the thread counts
(`THREAD_VARS`, read by OpenMP and BLAS when a new interpreter loads them), and the child limits
its OpenMP/BLAS pools to them as the service does (threadpoolctl), then checks that no pool it
used ran with more threads. The child process:

1. verifies the bundle (manifest digest against the expected one, every file's sha256, the
   scikit-learn version) and loads it from disk with the trusted-type list;
2. turns held-out test rows into JSON-like records (what a client sends) and validates them
   through `Signature.validate`, as the service does;
3. predicts them and compares with the reference: labels exactly, scores within
   `score_tolerance`.

The reference is the bundle's own `predictions.parquet` when the bundle was built on the
current test split (the normal case). A bundle built on an older split (a rollback after the
data changed) has no offline predictions for today's rows, so the gate computes them in its own
process and passes them on stdin: the check is then "the same bytes give the same outputs in
serving conditions", which is what a smoke test is for.

Run as `python -m pipeline.deploy.smoke --bundle DIR ... --threads N`; prints one JSON object
on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Read by OpenMP, OpenBLAS, MKL, Accelerate and numexpr when they initialise.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
TIMEOUT_SECONDS = 300
MAX_SHOWN = 5


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env


def held_out_rows(n: int, rows: int) -> list[int]:
    """`rows` positions spread evenly over a split of `n` rows (all of them if fewer)."""
    if n <= rows:
        return list(range(n))
    step = (n - 1) / (rows - 1) if rows > 1 else 0.0
    return sorted({round(i * step) for i in range(rows)})


def to_records(frame: pd.DataFrame, names: Sequence[str]) -> list[dict[str, Any]]:
    """Rows as a JSON client would send them (`pipeline.values.plain`: numbers, strings,
    booleans, ISO dates, nulls)."""
    from pipeline.values import plain

    columns = {name: [plain(v) for v in frame[name].tolist()] for name in names}
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# ----------------------------------------------------------------------------------- child
def check(
    bundle_dir: Path,
    test_path: Path,
    rows: int,
    tolerance: float,
    *,
    expected_digest: str | None = None,
    expected_id: str | None = None,
    reference: Mapping[str, Any] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The smoke test itself (runs in the child): a dict with `passed` and every problem.
    With `threads`, the OpenMP/BLAS pools are limited to that many threads, and a pool that
    ran with more (one the limit did not reach) is a problem. (A library may use fewer than
    asked, e.g. OpenBLAS no more than the cores: that is not one.)"""
    import contextlib

    import numpy as np

    from pipeline.bundle_format import PREDICTIONS
    from pipeline.deploy import scoring
    from pipeline.deploy.bundle import load_bundle
    from pipeline.errors import MlopsError
    from pipeline.tables import read_table

    result: dict[str, Any] = {
        "passed": False,
        "problems": [],
        "environment": {k: os.environ.get(k) for k in THREAD_VARS},  # as the child saw it
    }
    try:
        bundle = load_bundle(bundle_dir, expected_digest)
        if expected_id is not None and bundle.id != expected_id:
            raise MlopsError(f"{bundle_dir}: bundle id {bundle.id}, expected {expected_id}")
        test = read_table(test_path, "parquet")
    except MlopsError as exc:
        result["problems"].append(str(exc))
        return result
    positions = held_out_rows(len(test), rows)
    records = to_records(test.iloc[positions], bundle.signature.names)
    validated = bundle.signature.validate(records)
    result["rows"] = len(positions)
    if not validated.ok or validated.frame is None:
        shown = "; ".join(
            f"row {positions[e['index']]}: {e['field']}: {e['message']}"
            for e in validated.errors[:MAX_SHOWN]
        )
        result["problems"].append(
            f"{len(validated.errors)} signature error(s) on held-out rows: {shown}"
        )
        return result
    with contextlib.ExitStack() as limits:
        if threads is not None:
            from threadpoolctl import threadpool_limits

            limits.enter_context(threadpool_limits(limits=threads))
        pred, proba = scoring.predict(bundle.model, validated.frame, bundle.task)
        pools = _pool_threads() if threads is not None else {}
    over = {pool: n for pool, n in pools.items() if threads is not None and n > threads}
    if over:
        shown = ", ".join(f"{pool}: {n}" for pool, n in sorted(over.items()))
        result["problems"].append(f"thread pools above the serving {threads} thread(s): {shown}")
        return result
    if reference is None:
        offline = bundle.predictions().set_index(scoring.ROW)
        missing = [p for p in positions if p not in offline.index]
        if missing:
            result["problems"].append(
                f"predictions.parquet has no row(s) {missing[:MAX_SHOWN]}; it does not cover "
                "the test split"
            )
            return result
        ref = offline.loc[positions]
        ref_pred = ref[scoring.PREDICTION].to_numpy()
        classes = bundle.meta["model"].get("classes") or []
        cols = [scoring.proba_column(c) for c in classes]
        ref_proba = ref[cols].to_numpy(dtype=float) if cols and proba is not None else None
        result["reference"] = PREDICTIONS
    else:
        ref_pred = np.asarray(reference["prediction"], dtype=object)
        ref_proba = None if reference.get("proba") is None else np.asarray(reference["proba"])
        result["reference"] = "recomputed by the gate (bundle built on another test split)"
    result.update(_compare(bundle.task, positions, pred, proba, ref_pred, ref_proba, tolerance))
    return result


def _pool_threads() -> dict[str, int]:
    """Threads of every OpenMP/BLAS pool loaded in this process, by library file."""
    from threadpoolctl import threadpool_info

    return {Path(info["filepath"]).name: int(info["num_threads"]) for info in threadpool_info()}


def _compare(
    task: str,
    positions: list[int],
    pred: np.ndarray,
    proba: np.ndarray | None,
    ref_pred: np.ndarray,
    ref_proba: np.ndarray | None,
    tolerance: float,
) -> dict[str, Any]:
    import numpy as np

    problems = []
    out: dict[str, Any] = {}
    if task == "classification":
        wrong = np.flatnonzero(pred.astype(str) != ref_pred.astype(str))
        out["label_mismatches"] = len(wrong)
        if len(wrong):
            problems.append(
                f"{len(wrong)} label(s) differ from the offline predictions, e.g. row "
                f"{positions[wrong[0]]}: {pred[wrong[0]]!r} vs {ref_pred[wrong[0]]!r}"
            )
        if proba is not None and ref_proba is not None:
            diff = float(np.max(np.abs(proba - ref_proba))) if proba.size else 0.0
            out["max_score_diff"] = diff
            if not diff <= tolerance:
                problems.append(
                    f"class probabilities differ by up to {diff:.3g} (tolerance {tolerance:g})"
                )
    else:
        diff = float(np.max(np.abs(pred.astype(float) - ref_pred.astype(float))))
        out["max_score_diff"] = diff
        if not diff <= tolerance:
            problems.append(f"predictions differ by up to {diff:.3g} (tolerance {tolerance:g})")
    out["problems"] = problems
    out["passed"] = not problems
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.deploy.smoke")
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--rows", required=True, type=int)
    parser.add_argument("--tolerance", required=True, type=float)
    parser.add_argument("--digest")
    parser.add_argument("--id")
    parser.add_argument("--reference-stdin", action="store_true")
    parser.add_argument("--threads", required=True, type=int)
    args = parser.parse_args(argv)
    reference = json.load(sys.stdin) if args.reference_stdin else None
    result = check(
        args.bundle,
        args.test,
        args.rows,
        args.tolerance,
        expected_digest=args.digest,
        expected_id=args.id,
        reference=reference,
        threads=args.threads,
    )
    json.dump(result, sys.stdout, sort_keys=True, allow_nan=False)
    return 0


# ---------------------------------------------------------------------------------- parent
MODULE = "pipeline.deploy.smoke"


def run(
    bundle_dir: Path,
    test_path: Path,
    *,
    rows: int,
    tolerance: float,
    threads: int,
    expected_digest: str | None = None,
    expected_id: str | None = None,
    reference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the smoke test in a fresh process with `threads` OpenMP/BLAS threads: forked from
    the warm stage runner when one serves this code, else a new interpreter."""
    args = [
        "--bundle",
        str(bundle_dir),
        "--test",
        str(test_path),
        "--rows",
        str(rows),
        "--tolerance",
        repr(tolerance),
        "--threads",
        str(threads),
    ]
    if expected_digest:
        args += ["--digest", expected_digest]
    if expected_id:
        args += ["--id", expected_id]
    if reference is not None:
        args.append("--reference-stdin")
    stdin = "" if reference is None else json.dumps(reference)
    try:
        done = _forked(args, threads, stdin)
        if done is None:
            done = _interpreter(args, threads, stdin)
    except subprocess.TimeoutExpired:
        return _failed(f"the smoke test did not finish in {TIMEOUT_SECONDS} s", threads)
    except ConnectionError as exc:
        return _failed(f"the smoke test did not finish: {exc}", threads)
    code, stdout, stderr = done
    if code != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return _failed(f"the smoke test process exited {code}: {tail}", threads)
    try:
        result: dict[str, Any] = json.loads(stdout)
    except ValueError:
        return _failed(f"the smoke test printed no result: {stdout[-200:]!r}", threads)
    result["threads"] = threads
    return result


def _forked(args: list[str], threads: int, stdin: str) -> tuple[int, str, str] | None:
    """(exit status, stdout, stderr) of the smoke test forked from the warm runner; None when
    no runner serves this code (the caller starts an interpreter)."""
    from pipeline.run import run_forked

    with (
        tempfile.TemporaryFile() as inp,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        inp.write(stdin.encode())
        inp.seek(0)
        try:
            code = run_forked(
                MODULE,
                args,
                env=thread_env(threads),
                fds=[inp.fileno(), out.fileno(), err.fileno()],
                timeout=TIMEOUT_SECONDS,
            )
        except TimeoutError:
            raise subprocess.TimeoutExpired(MODULE, TIMEOUT_SECONDS) from None
        if code is None:
            return None
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def _interpreter(args: list[str], threads: int, stdin: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the smoke test in a new interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        env=thread_env(threads),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _failed(problem: str, threads: int) -> dict[str, Any]:
    return {"passed": False, "problems": [problem], "threads": threads}


if __name__ == "__main__":
    raise SystemExit(main())
