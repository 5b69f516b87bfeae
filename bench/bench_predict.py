"""Batch scoring benchmark: `mlops predict` against the raw model on the same Parquet rows.

    .venv/bin/python bench/bench_predict.py                   # 200k rows (about 2 minutes)
    .venv/bin/python bench/bench_predict.py --rows 50000 --project PATH   # reuse a project

The model is the project's own champion bundle (`dvc repro package` in a throw-away copy with
the fast experiment, unless --project names a reproduced project). The input is `--rows` rows
drawn with replacement (fixed seed) from the pool and test splits, the 30 feature columns only,
written once as Parquet. Contenders, measured in the same process, interleaved, best of
`--repeat` (the 2 cores are shared):

* ours: `pipeline.deploy.batch.predict_file` (what `mlops predict` runs): read in chunks,
  validate every value against the signature (column-wise), predict + class probabilities,
  flags, write Parquet atomically.
* raw I/O: the minimal script with the same output: `pd.read_parquet`, `model.predict`,
  `model.predict_proba`, `DataFrame.to_parquet`. No validation.
* raw read + predict: `pd.read_parquet` and `model.predict`, nothing written (no output file,
  no probabilities: less work than scoring a file, shown for scale).
* raw predict: `model.predict(X)` alone on the frame already in memory (the floor).

The goal (ours >= 0.9x) is measured against "raw I/O", the plain program that produces the
same output file; writing ~35 Parquet columns is most of either's time.

Also reported: the `mlops predict` command end to end (a fresh interpreter: imports included),
and the validation alone on the whole frame (`validate_columns`) against the per-record
`Signature.validate` on 20k rows (the service's validator), to show why batch has its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import copy_project, env, run

BIN = Path(sys.executable).parent
SEED = 42


def reproduced_project(tmp: Path) -> Path:
    project = copy_project(tmp / "project")
    feedback = project / "data/feedback"  # a dependency of `prepare`, committed empty
    feedback.mkdir(parents=True, exist_ok=True)
    (feedback / ".gitkeep").touch()
    fast = (project / "conf/experiment/fast.yaml").read_text()
    (project / "conf/local/default.yaml").write_text(fast)
    run([str(BIN / "mlops"), "compose"], project)
    print("reproducing the champion's bundle (dvc repro package) ...", flush=True)
    run([str(BIN / "dvc"), "repro", "package"], project)
    return project


def make_input(project: Path, rows: int, path: Path) -> pd.DataFrame:
    from pipeline.deploy.bundle import load_bundle

    names = load_bundle(project / "models/bundle").signature.names
    pool = pd.concat(
        [pd.read_parquet(project / f"data/prepared/{s}.parquet") for s in ("pool", "test")],
        ignore_index=True,
    )[names]
    picks = np.random.default_rng(SEED).integers(0, len(pool), rows)
    frame = pool.iloc[picks].reset_index(drop=True)
    frame.to_parquet(path, index=False)
    return frame


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--project", type=Path, help="a reproduced project (skips the repro)")
    args = parser.parse_args()

    from pipeline.deploy.batch import BatchSettings, predict_file
    from pipeline.deploy.bundle import load_bundle
    from pipeline.deploy.columns import validate_columns
    from pipeline.deploy.smoke import to_records

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp_name:
        tmp = Path(tmp_name)
        project = args.project or reproduced_project(tmp)
        source = tmp / "input.parquet"
        frame = make_input(project, args.rows, source)
        bundle = load_bundle(project / "models/bundle")
        model = bundle.model
        settings = BatchSettings("fail", "flag", chunk_rows=100_000)
        print(
            f"model: {bundle.meta['model']['estimator']} on {len(bundle.signature.names)} "
            f"features; {args.rows} rows; best of {args.repeat}",
            flush=True,
        )

        def ours() -> None:
            predict_file(bundle, source, tmp / "ours.parquet", settings)

        def raw_io() -> None:
            X = pd.read_parquet(source)
            out = X.copy()
            out["prediction"] = model.predict(X)
            proba = model.predict_proba(X)
            for i, cls in enumerate(model.classes_):
                out[f"proba_{cls}"] = proba[:, i]
            out.to_parquet(tmp / "raw.parquet", index=False)

        def raw_read_predict() -> None:
            model.predict(pd.read_parquet(source))

        def raw_predict() -> None:
            model.predict(frame)

        contenders = {
            "ours": ours,
            "raw_io": raw_io,
            "raw_read_predict": raw_read_predict,
            "raw_predict": raw_predict,
        }
        timings: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(2):  # interleaved rounds; each keeps its best of --repeat
            for name, fn in contenders.items():
                timings[name].append(best(fn, args.repeat))
        t = {k: min(v) for k, v in timings.items()}
        ours_out = pd.read_parquet(tmp / "ours.parquet")
        assert ours_out["prediction"].tolist() == model.predict(frame).tolist()

        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "mlops"), "predict", "--bundle", "models/bundle", "--input", str(source),
             "--output", str(tmp / "cli.parquet")],
            cwd=project, env=env(), check=True, capture_output=True,
        )  # fmt: skip
        cli = time.perf_counter() - start

        sample = frame.iloc[:20_000]
        records = to_records(sample, list(sample.columns))
        t_columns = best(lambda: validate_columns(bundle.signature, frame), args.repeat)
        t_records = best(lambda: bundle.signature.validate(records), 1)

    rate = {k: args.rows / v for k, v in t.items()}
    print(f"{'contender':<34}{'seconds':>9}{'rows/s':>14}")
    print(f"{'ours (predict_file)':<34}{t['ours']:>9.3f}{rate['ours']:>14,.0f}")
    print(f"{'raw I/O (read, predict, write)':<34}{t['raw_io']:>9.3f}{rate['raw_io']:>14,.0f}")
    print(
        f"{'raw read + model.predict':<34}{t['raw_read_predict']:>9.3f}"
        f"{rate['raw_read_predict']:>14,.0f}"
    )
    name = "raw model.predict (in memory)"
    print(f"{name:<34}{t['raw_predict']:>9.3f}{rate['raw_predict']:>14,.0f}")
    print(f"{'mlops predict (fresh process)':<34}{cli:>9.3f}{args.rows / cli:>14,.0f}")
    print(f"ratio ours / raw I/O:            {rate['ours'] / rate['raw_io']:.2f}x  (goal >= 0.9)")
    print(f"ratio ours / raw read + predict: {rate['ours'] / rate['raw_read_predict']:.2f}x")
    print(f"ratio ours / raw model.predict:  {rate['ours'] / rate['raw_predict']:.2f}x")
    print(
        f"validation: column-wise {args.rows / t_columns:,.0f} rows/s vs per-record "
        f"Signature.validate {len(records) / t_records:,.0f} rows/s "
        f"({(args.rows / t_columns) / (len(records) / t_records):.0f}x)"
    )


if __name__ == "__main__":
    main()
