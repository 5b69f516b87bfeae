"""Benchmark of the drift engine: ours vs a plain numpy/scipy version vs Evidently 0.7.

    python bench/bench_drift.py [--sizes 10000 100000 1000000] [--no-evidently] [--no-sketch]
                                [--sketch-rows 10000000] [--workdir DIR]

For each size, reference and current frames of N rows x (15 numeric + 5 categorical + a
prediction column) are generated with a fixed seed, drift injected into a few columns, and written
to Parquet. Each contender then runs in its own subprocess, so that its peak memory can be read
from /proc (VmHWM reset after loading the data, so "extra" is what the drift computation adds):

* ours: exact mode, reference built beforehand as at develop time (timed separately);
* baseline: the same tests, written plainly with numpy/scipy on unsorted columns, one by one;
* Evidently 0.7.23's DataDriftPreset, in its own venv ($EVIDENTLY_PYTHON, else
  .venv-bench-evidently/bin/python; skipped when absent), compared column by column.

Then sketch mode streams a 10M-row Parquet file (15 numeric + 5 categorical) against a
sketch-mode reference, reporting wall time, peak RSS and the error against exact mode.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pipeline.params import DriftSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEED = 20250101
N_NUMERIC, N_CATEGORICAL = 15, 5
CATEGORIES = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"])


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def make_frame(n: int, seed: int, drift: bool, prediction: bool = True) -> pd.DataFrame:
    """N rows: varied numeric shapes (some low-cardinality), categoricals, a prediction score."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(N_NUMERIC):
        shape = i % 5
        if shape == 0:
            x = rng.normal(0, 1, n)
        elif shape == 1:
            x = rng.lognormal(0, 1, n)
        elif shape == 2:
            x = rng.uniform(-5, 5, n)
        elif shape == 3:
            x = rng.integers(0, 50, n).astype(np.float64)
        else:
            x = rng.integers(0, 4, n).astype(np.float64)  # low cardinality: Jensen-Shannon
        if i % 4 == 1:
            x[rng.random(n) < 0.02] = np.nan
        cols[f"num_{i}"] = x
    for j in range(N_CATEGORICAL):
        k = 3 + j
        p = np.linspace(1, 2, k)
        cols[f"cat_{j}"] = CATEGORIES[rng.choice(k, n, p=p / p.sum())]
    if prediction:
        cols["prediction"] = 1 / (1 + np.exp(-rng.normal(0, 1.5, n)))
    frame = pd.DataFrame(cols)
    if drift:
        _inject(frame, rng)
    return frame


def _inject(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    n = len(frame)
    frame["num_0"] += 0.5
    frame["num_2"] *= 1.3
    frame["num_4"] = rng.integers(0, 5, n).astype(np.float64)
    cats = frame["cat_1"].to_numpy(copy=True)
    cats[rng.random(n) < 0.3] = "omega"
    frame["cat_1"] = cats
    if "prediction" in frame:
        frame["prediction"] = np.clip(frame["prediction"] + 0.1, 0, 1)


def kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {c: "categorical" if c.startswith("cat_") else "numeric" for c in frame.columns}


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Reset the peak-RSS watermark to the current RSS; return the current RSS in KiB."""
    gc.collect()
    with contextlib.suppress(OSError):  # not Linux: the watermark is the process peak
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


# --------------------------------------------------------------------------------------------
# Workers (run in subprocesses)
# --------------------------------------------------------------------------------------------


def drift_settings(**changes: Any) -> DriftSettings:
    """The committed drift settings (conf/monitor/default.yaml), with `changes` applied."""
    from dataclasses import replace

    import yaml

    from pipeline.params import DriftSettings

    monitor = yaml.safe_load((ROOT / "conf" / "monitor" / "default.yaml").read_text())
    return replace(DriftSettings.from_params(monitor), **changes)


def worker_ours(ref_path: str, cur_path: str) -> dict:
    from pipeline.monitor.drift import compute_drift
    from pipeline.profile.reference import build_reference

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    start = time.perf_counter()
    reference = build_reference(ref, kinds(ref))
    build = time.perf_counter() - start
    del ref
    base = _reset_peak()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        report = compute_drift(reference, cur, drift_settings())
        times.append(time.perf_counter() - start)
    peak = _status_kib("VmHWM")
    start = time.perf_counter()
    compute_drift(reference, cur, drift_settings(workers=1))
    serial = time.perf_counter() - start
    return {
        "build_s": build,
        "drift_s": min(times),
        "serial_s": serial,
        "peak_extra_mib": (peak - base) / 1024,
        "columns": {
            c.column: {"method": c.method, "score": c.statistic, "drifted": c.drifted}
            for c in report.columns
        },
        "share": report.share,
    }


def worker_baseline(ref_path: str, cur_path: str) -> dict:
    """The same tests with numpy/scipy, column by column, no pre-sorting or parallelism."""
    from scipy import stats
    from scipy.spatial import distance

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    base = _reset_peak()
    start = time.perf_counter()
    out = {}
    for name, kind in kinds(ref).items():
        out[name] = _baseline_column(
            ref[name].to_numpy(), cur[name].to_numpy(), kind, stats, distance
        )
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {"drift_s": seconds, "peak_extra_mib": (peak - base) / 1024, "columns": out}


def _baseline_column(r: np.ndarray, c: np.ndarray, kind: str, stats, distance) -> dict:
    if kind == "numeric":
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        n_values = np.unique(np.concatenate([r, c])).size
    else:  # categories are counted with pandas' hash table, as anyone would
        r_counts, c_counts = pd.Series(r).value_counts(), pd.Series(c).value_counts()
        n_values = r_counts.index.union(c_counts.index).size
    if r.size <= 1000:
        method = (
            "ks" if kind == "numeric" and n_values > 5 else ("chisquare" if n_values > 2 else "z")
        )
    else:
        method = "wasserstein" if kind == "numeric" and n_values > 5 else "jensenshannon"
    if method == "wasserstein":
        score = stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001)
    elif method == "ks":
        score = stats.ks_2samp(r, c).pvalue
    else:
        if kind == "numeric":
            r_counts, c_counts = pd.Series(r).value_counts(), pd.Series(c).value_counts()
        keys = r_counts.index.union(c_counts.index)
        rc = r_counts.reindex(keys, fill_value=0).to_numpy()
        cc = c_counts.reindex(keys, fill_value=0).to_numpy()
        if method == "jensenshannon":
            score = distance.jensenshannon(rc / r.size, cc / c.size)
        else:
            score = stats.chisquare(cc, rc * (c.size / r.size)).pvalue
    return {"method": method, "score": float(score)}


def worker_sketch_reference(ref_path: str, out_dir: str) -> dict:
    from pipeline.profile.reference import build_reference

    ref = pd.read_parquet(ref_path)
    start = time.perf_counter()
    build_reference(ref, kinds(ref), mode="sketch").save(Path(out_dir) / "sketch-ref")
    build_reference(ref, kinds(ref), mode="exact").save(Path(out_dir) / "exact-ref")
    return {"build_s": time.perf_counter() - start}


def worker_sketch(ref_dir: str, cur_path: str) -> dict:
    from pipeline.monitor.sketch import compute_drift_parquet
    from pipeline.profile.reference import Reference

    reference = Reference.load(ref_dir)
    _reset_peak()
    start = time.perf_counter()
    report = compute_drift_parquet(reference, cur_path, drift_settings(mode="sketch"))
    seconds = time.perf_counter() - start
    return {
        "drift_s": seconds,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "columns": {c.column: c.to_dict() for c in report.columns},
    }


def worker_exact_file(ref_dir: str, cur_path: str) -> dict:
    from pipeline.monitor.drift import compute_drift
    from pipeline.profile.reference import Reference

    reference = Reference.load(ref_dir)
    cur = pd.read_parquet(cur_path)
    start = time.perf_counter()
    report = compute_drift(reference, cur, drift_settings())
    return {
        "drift_s": time.perf_counter() - start,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "columns": {c.column: c.to_dict() for c in report.columns},
    }


WORKERS = {
    "ours": worker_ours,
    "baseline": worker_baseline,
    "sketch": worker_sketch,
    "sketch_reference": worker_sketch_reference,
    "exact_file": worker_exact_file,
}


def run_worker(name: str, *args: str) -> dict:
    """Run one worker in a fresh interpreter and return its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Evidently
# --------------------------------------------------------------------------------------------


def evidently_python() -> Path | None:
    path = Path(os.environ.get("EVIDENTLY_PYTHON", ROOT / ".venv-bench-evidently/bin/python"))
    return path if path.is_file() else None


def run_evidently(python: Path, ref_path: Path, cur_path: Path, frame_kinds: dict) -> dict:
    spec = {
        "cases": [
            {
                "name": "bench",
                "reference": str(ref_path),
                "current": str(cur_path),
                "numeric": [c for c, k in frame_kinds.items() if k == "numeric"],
                "categorical": [c for c, k in frame_kinds.items() if k == "categorical"],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run(
            [
                str(python),
                str(ROOT / "bench" / "evidently_runner.py"),
                str(spec_path),
                str(out_path),
            ],
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        return json.loads(out_path.read_text())["bench"]


def compare(ours: dict, theirs: dict) -> tuple[bool, float, bool]:
    """(same drifted columns, max score difference, same methods)."""
    diffs, same_drift, same_method = [], True, True
    for name, mine in ours["columns"].items():
        other = theirs["columns"][name]
        same_drift &= mine["drifted"] == other["drifted"]
        same_method &= mine["method"] == other["method"]
        if mine["score"] is not None and other["score"] is not None:
            diffs.append(abs(mine["score"] - other["score"]))
    return same_drift, max(diffs, default=math.nan), same_method


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def bench_size(n: int, workdir: Path, evidently: Path | None) -> None:
    ref, cur = make_frame(n, SEED, drift=False), make_frame(n, SEED + 1, drift=True)
    ref_path, cur_path = workdir / f"ref-{n}.parquet", workdir / f"cur-{n}.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    frame_kinds = kinds(ref)
    del ref, cur
    ours = run_worker("ours", str(ref_path), str(cur_path))
    base = run_worker("baseline", str(ref_path), str(cur_path))
    print(f"\n== {n:,} rows x {len(frame_kinds)} columns")
    print(
        f"  ours     drift {ours['drift_s']:8.3f} s   with reference build "
        f"{ours['drift_s'] + ours['build_s']:8.3f} s   peak extra {ours['peak_extra_mib']:8.1f} MiB"
    )
    print(f"  ours on one thread {ours['serial_s']:8.3f} s")
    print(
        f"  baseline drift {base['drift_s']:8.3f} s   peak extra {base['peak_extra_mib']:8.1f} MiB"
        f"   -> ours is {base['drift_s'] / ours['drift_s']:.1f}x faster"
    )
    same = all(
        base["columns"][c]["method"] == ours["columns"][c]["method"]
        and math.isclose(
            base["columns"][c]["score"], ours["columns"][c]["score"], rel_tol=1e-9, abs_tol=1e-9
        )
        for c in frame_kinds
    )
    print(f"  baseline agrees with ours to 1e-9: {same}")
    drifted = sorted(c for c, v in ours["columns"].items() if v["drifted"])
    print(f"  drifted columns: {', '.join(drifted)} (share {ours['share']:.3f})")
    if evidently is None:
        print("  Evidently: skipped (--no-evidently, or no venv: see bench/README.md)")
        return
    theirs = run_evidently(evidently, ref_path, cur_path, frame_kinds)
    if "error" in theirs:
        print(f"  Evidently failed: {theirs['error']}")
        return
    same_drift, max_diff, same_method = compare(ours, theirs)
    print(
        f"  Evidently drift {theirs['seconds']:8.3f} s   peak extra "
        f"{theirs['peak_extra_mib']:8.1f} MiB"
    )
    print(
        f"  -> ours is {theirs['seconds'] / ours['drift_s']:.1f}x faster "
        f"({theirs['seconds'] / (ours['drift_s'] + ours['build_s']):.1f}x with reference build)"
        f", uses {ours['peak_extra_mib'] / max(theirs['peak_extra_mib'], 1e-9):.3f}x its memory"
    )
    print(
        f"  same methods: {same_method}, same drifted columns: {same_drift}, "
        f"max score difference: {max_diff:.3g}"
    )


def bench_sketch(rows: int, workdir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref_path, cur_path = workdir / "sketch-ref.parquet", workdir / f"sketch-cur-{rows}.parquet"
    make_frame(1_000_000, SEED, drift=False, prediction=False).to_parquet(ref_path)
    if not cur_path.exists():
        start = time.perf_counter()
        writer = None
        chunk = 1_000_000
        for i in range(0, rows, chunk):
            table = pa.Table.from_pandas(
                make_frame(min(chunk, rows - i), SEED + 10 + i, True, prediction=False),
                preserve_index=False,
            )
            writer = writer or pq.ParquetWriter(cur_path, table.schema)
            writer.write_table(table, row_group_size=256_000)
        if writer:
            writer.close()
        print(
            f"\n(wrote {rows:,}-row Parquet in {time.perf_counter() - start:.1f} s, "
            f"{cur_path.stat().st_size / 2**20:.0f} MiB)"
        )
    run_worker("sketch_reference", str(ref_path), str(workdir))
    sk = run_worker("sketch", str(workdir / "sketch-ref"), str(cur_path))
    ex = run_worker("exact_file", str(workdir / "exact-ref"), str(cur_path))
    print(f"\n== sketch mode, {rows:,} rows x 20 columns from Parquet (reference: 1M rows)")
    print(f"  sketch: {sk['drift_s']:.2f} s, peak RSS {sk['peak_rss_mib']:.0f} MiB")
    print(
        f"  exact (whole file in memory): {ex['drift_s']:.2f} s compute, "
        f"peak RSS {ex['peak_rss_mib']:.0f} MiB"
    )
    worst, ratio, agree = 0.0, 0.0, True
    for name, s in sk["columns"].items():
        e = ex["columns"][name]
        agree &= s["drifted"] == e["drifted"] and s["method"] == e["method"]
        err = abs(s["statistic"] - e["statistic"])
        worst = max(worst, err)
        if s["error_bound"]:
            ratio = max(ratio, err / s["error_bound"])
        print(
            f"    {name:>8} {s['method']:>13} sketch {s['statistic']:.6g} exact "
            f"{e['statistic']:.6g} |err| {err:.2e} bound {s['error_bound']}"
        )
    print(f"  max |error| {worst:.2e}; max error/bound {ratio:.3f}; same verdicts: {agree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--no-sketch", action="store_true")
    parser.add_argument("--sketch-rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--worker", default=None)
    args, rest = parser.parse_known_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*rest)))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-drift-"))
    workdir.mkdir(parents=True, exist_ok=True)
    evidently = None if args.no_evidently else evidently_python()
    print(f"data in {workdir}; Evidently: {evidently or 'not available'}")
    for n in args.sizes:
        bench_size(n, workdir, evidently)
    if not args.no_sketch:
        bench_sketch(args.sketch_rows, workdir)


if __name__ == "__main__":
    main()
