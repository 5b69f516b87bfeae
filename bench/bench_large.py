"""Large inputs (issue 17): memory flat in the input's length and time linear in it.

    .venv/bin/python bench/bench_large.py prepare   [--rows 1000000 10000000]
    .venv/bin/python bench/bench_large.py bootstrap [--rows 25000 50000 100000 200000]
    .venv/bin/python bench/bench_large.py snapshot  [--windows 10 3000] [--records 100000 1000000]
    .venv/bin/python bench/bench_large.py predict --project PATH [--rows 1000000 5000000]

Every figure is measured in a fresh child process (`_child`), so its peak RSS (VmHWM) is its
own; each comparison runs its baseline in the same invocation:

The implementations replaced are the identity tests' oracles (tests/test_splits_identity.py,
tests/deploy/test_bootstrap_identity.py, tests/deploy/test_snapshot_streaming.py), run here as
the baselines, and every run checks that old and new give the same result.

* prepare: the hash split's row hashing (`assign_splits`, no key column) of a Parquet file of
  15 float + 5 text columns, against a plain `pd.read_parquet` of the same file and against the
  per-cell implementation it replaced (the assignments must be identical).
* bootstrap: `paired_bootstrap.compare` (roc_auc, binary, `--resamples` 2000 as the gates
  declare) against the per-chunk implementation: nanoseconds per test row per resample, and
  identical intervals.
* snapshot: `mlops logs snapshot`'s function: 250 new records on top of W windows of 250, and a
  log of N records cut into windows of 1000 (old and new write the same windows). The log is
  written as the service writes it: rotated into numbered files of `rotate_bytes` (10 MiB).
* predict: `mlops predict` (a fresh process) on a 30-feature Parquet file of the project's
  pool rows at each size: peak RSS and rows/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the old implementations are the tests' oracles
SEED = 17
NEW = "read + hashing (new)"


def peak_mib() -> float:
    """This process's peak RSS (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str) -> dict[str, Any]:
    """Run `_child args...` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, __file__, "_child", *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------- prepare
def _old_units(df: Any, salt: str) -> np.ndarray:
    """The implementation before issue 17 (one Python string per row, built cell by cell),
    kept as the test's oracle."""
    from tests.test_splits_identity import _old_row_keys, _old_stable_unit

    return _old_stable_unit(_old_row_keys(df, list(df.columns)), salt)


def make_table(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        cols: dict[str, Any] = {f"num_{i}": rng.normal(size=n).round(4) for i in range(15)}
        for i in range(5):
            cats = np.array([f"c{j}" for j in range(20 * (i + 1))], dtype=object)
            cols[f"cat_{i}"] = cats[rng.integers(0, len(cats), n)]
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def child_prepare(mode: str, path: str) -> dict[str, Any]:
    """Read the file, then (new) `assign_splits` with a hash split over every column, as
    `prepare` runs it, or (old) the same assignment from the old per-cell units."""
    import pandas as pd

    from pipeline import splits
    from pipeline.settings import SplitSpec

    start = time.perf_counter()
    df = pd.read_parquet(path)
    read = time.perf_counter() - start
    labels = None
    split = SplitSpec(
        method="hash", salt="salt", test_size=0.2, pool_size=0.2, group_column=None,
        time_column=None, test_from=None, pool_from=None,
    )  # fmt: skip
    if mode == "new":
        spec: Any = SimpleNamespace(key=None, columns=[SimpleNamespace(name=c) for c in df.columns])
        labels = splits.assign_splits(df, spec, split)
    elif mode == "old":
        units = _old_units(df, "salt")
        labels = np.where(units < 0.2, "test", np.where(units < 0.4, "pool", "train"))
    total = time.perf_counter() - start
    digest = None
    if labels is not None:
        digest = hashlib.sha256("".join(str(v)[:2] for v in labels).encode()).hexdigest()
    return {"read": read, "seconds": total, "peak": peak_mib(), "digest": digest}


def bench_prepare(rows: list[int], old_up_to: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        print(f"{'rows':>10} {'contender':<28}{'seconds':>9}{'hash s':>9}{'peak MiB':>10}")
        for n in rows:
            path = Path(tmp) / f"t{n}.parquet"
            make_table(path, n)
            runs = {"plain pd.read_parquet": child("prepare", "read", str(path))}
            runs["read + hashing (new)"] = child("prepare", "new", str(path))
            if n <= old_up_to:
                runs["read + hashing (old)"] = child("prepare", "old", str(path))
                same = runs["read + hashing (old)"]["digest"] == runs[NEW]["digest"]
                assert same, "the units differ"
            for name, r in runs.items():
                hashing = r["seconds"] - r["read"]
                print(f"{n:>10} {name:<28}{r['seconds']:>9.2f}{hashing:>9.2f}{r['peak']:>10.0f}")
            new, plain = runs["read + hashing (new)"], runs["plain pd.read_parquet"]
            line = (
                f"{n:>10} new / plain read: time {new['seconds'] / plain['seconds']:.1f}x, "
                f"peak {new['peak'] / plain['peak']:.2f}x"
            )
            if "read + hashing (old)" in runs:
                old = runs["read + hashing (old)"]
                speedup = (old["seconds"] - old["read"]) / (new["seconds"] - new["read"])
                line += f"; hashing old / new {speedup:.1f}x (assignments identical)"
            print(line, flush=True)


# ------------------------------------------------------------------------------- predict
def make_input(project: Path, rows: int, path: Path) -> None:
    """`rows` rows drawn with replacement (fixed seed) from the pool and test splits, the
    model's columns only, written in 1M-row blocks (row groups) so that building it is
    bounded too."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.deploy.bundle import load_bundle

    names = load_bundle(project / "models/bundle").signature.names
    pool = pd.concat(
        [pd.read_parquet(project / f"data/prepared/{s}.parquet") for s in ("pool", "test")],
        ignore_index=True,
    )[names]
    rng = np.random.default_rng(SEED)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        table = pa.Table.from_pandas(
            pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True), preserve_index=False
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def child_predict(mode: str, project: str, source: str, output: str) -> dict[str, Any]:
    """`predict_file` as `mlops predict` runs it; mode "old" opens the Parquet input with
    pyarrow's default pre-buffering (the implementation before issue 17)."""
    import pyarrow.parquet as pq

    from pipeline.deploy.batch import BatchSettings, predict_file
    from pipeline.deploy.bundle import load_bundle

    if mode == "old":
        original = pq.ParquetFile

        def prebuffered(path: Any, **kwargs: Any) -> Any:
            return original(path, **{**kwargs, "pre_buffer": True})

        pq.ParquetFile = prebuffered  # type: ignore[misc,assignment]
    bundle = load_bundle(Path(project) / "models/bundle")
    before = peak_mib()
    start = time.perf_counter()
    result = predict_file(
        bundle, Path(source), Path(output), BatchSettings("fail", "flag", 100_000)
    )
    seconds = time.perf_counter() - start
    peak = peak_mib()  # before the digest below, which is the bench's, not the command's
    digest = hashlib.sha256()
    with Path(output).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"seconds": seconds, "peak": peak, "before": before, "rows": result.rows,
            "digest": digest.hexdigest()}  # fmt: skip


def cli_predict(project: Path, source: Path, output: Path) -> dict[str, Any]:
    """`mlops predict` end to end in its own process: wall time and that process's peak RSS."""
    mlops = Path(sys.executable).parent / "mlops"
    start = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(mlops), "predict", "--bundle", "models/bundle",
         "--input", str(source), "--output", str(output)],
        cwd=project, check=True, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak": int(out.stderr.strip().splitlines()[-1]) / 1024}


def bench_predict(project: Path, rows: list[int], old_up_to: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        print(f"{'rows':>10} {'contender':<34}{'seconds':>9}{'rows/s':>12}{'peak MiB':>10}")
        peaks = []
        for n in rows:
            source = Path(tmp) / f"in{n}.parquet"
            make_input(project, n, source)
            runs = {"predict_file (new)": child("predict", "new", str(project), str(source),
                                                 str(Path(tmp) / "new.parquet"))}  # fmt: skip
            if n <= old_up_to:
                runs["predict_file (old, pre_buffer)"] = child(
                    "predict", "old", str(project), str(source), str(Path(tmp) / "old.parquet")
                )
                same = (
                    runs["predict_file (old, pre_buffer)"]["digest"]
                    == runs["predict_file (new)"]["digest"]
                )
                assert same, "the outputs differ"
            runs["mlops predict (new, end to end)"] = cli_predict(
                project, source, Path(tmp) / "cli.parquet"
            )
            for name, r in runs.items():
                print(
                    f"{n:>10} {name:<34}{r['seconds']:>9.1f}{n / r['seconds']:>12,.0f}"
                    f"{r['peak']:>10.0f}",
                    flush=True,
                )
            peaks.append(runs["mlops predict (new, end to end)"]["peak"])
            source.unlink()
        print(f"mlops predict peak RSS, largest / smallest input: {max(peaks) / min(peaks):.2f}x")


# ----------------------------------------------------------------------------- bootstrap
def child_bootstrap(mode: str, rows: str, resamples: str) -> dict[str, Any]:
    """The deploy gate's comparison (roc_auc, binary, scores with ties) on `rows` test rows."""
    from pipeline import paired_bootstrap as bootstrap
    from tests.deploy.test_bootstrap_identity import _old_compare

    n, r = int(rows), int(resamples)
    rng = np.random.default_rng(SEED)
    y = rng.choice(["no", "yes"], size=n).astype(object)
    models = []
    for noise in (0.8, 0.9):
        p1 = np.clip((y == "yes") * 0.3 + rng.random(n) * noise, 0, 1).round(3)
        proba = np.column_stack([1 - p1, p1])
        pred = np.where(p1 >= 0.5, "yes", "no").astype(object)
        models.append(bootstrap.PairedScores(pred, proba, ["no", "yes"]))
    kwargs: dict[str, Any] = {"confidence": 0.95, "resamples": r, "seed": 7}
    warm = models[0]
    bootstrap.point(
        "roc_auc",
        "classification",
        y[:50],
        type(warm)(warm.pred[:50], warm.proba[:50], warm.classes),
    )  # imports scikit-learn
    start = time.perf_counter()
    if mode == "new":
        result = bootstrap.compare("roc_auc", "classification", y, *models, **kwargs)
        assert result is not None
        interval = [result.low, result.high]
    else:  # with the point estimates `compare` computes too
        for scored in models:
            bootstrap.point("roc_auc", "classification", y, scored)
        interval, _ = _old_compare("roc_auc", "classification", y, *models, **kwargs)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak": peak_mib(), "interval": interval}


def bench_bootstrap(rows: list[int], resamples: int, repeat: int) -> None:
    print(
        f"roc_auc, binary, {resamples} resamples, best of {repeat}; ns = nanoseconds per test "
        "row per resample"
    )
    print(f"{'rows':>8}{'old s':>9}{'new s':>9}{'old ns':>9}{'new ns':>9}{'old/new':>9}")
    for n in rows:
        runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for _ in range(repeat):  # interleaved; each keeps its best (the 2 cores are shared)
            for mode in ("old", "new"):
                runs[mode].append(child("bootstrap", mode, str(n), str(resamples)))
        old, new = (min(runs[m], key=lambda r: r["seconds"]) for m in ("old", "new"))
        assert old["interval"] == new["interval"], "the intervals differ"
        per = 1e9 / (n * resamples)
        print(
            f"{n:>8}{old['seconds']:>9.2f}{new['seconds']:>9.2f}{old['seconds'] * per:>9.1f}"
            f"{new['seconds'] * per:>9.1f}{old['seconds'] / new['seconds']:>8.1f}x",
            flush=True,
        )
    print("intervals identical (old, new) at every size")


# ------------------------------------------------------------------------------ snapshot
def _log_entries(start: int, n: int) -> Any:
    """Service log entries, one every 10 s from a fixed time (3,000 windows of 250 span 87
    days, so sealing packs closed days and months as it does in production): 10 inputs, an
    id, flags."""
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(start)
    values = rng.normal(size=(n, 8)).round(3)
    for i in range(n):
        moment = base + timedelta(seconds=10 * (start + i))
        inputs: dict[str, Any] = {f"x{j}": float(values[i, j]) for j in range(8)}
        inputs["c0"], inputs["c1"] = f"k{(start + i) % 7}", None
        yield {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "request_id": f"{start + i:012d}",
            "release": "r0001",
            "inputs": inputs,
            "prediction": "yes" if values[i, 0] > 0 else "no",
            "flags": ["out_of_range:x1"] if values[i, 1] > 2 else [],
        }


ROTATE_BYTES = 10_485_760  # conf/deploy/local.yaml's serve.log.rotate_bytes


def _append_log(log_dir: Path, start: int, n: int) -> None:
    """Append as the service's log writer does: the current file rotates into the next
    numbered file once it reaches `rotate_bytes` (pipeline.deploy.service.predlog's layout)."""
    from pipeline.deploy.service.predlog import rotated_paths

    log_dir.mkdir(parents=True, exist_ok=True)
    current = log_dir / "predictions.jsonl"
    rotated = rotated_paths(log_dir, "predictions")
    number = int(rotated[-1].name.split(".")[1]) if rotated else 0
    fh = current.open("a")
    try:
        for entry in _log_entries(start, n):
            fh.write(json.dumps(entry) + "\n")
            if fh.tell() >= ROTATE_BYTES:
                fh.close()
                number += 1
                current.rename(log_dir / f"predictions.{number:08d}.jsonl")
                fh = current.open("a")
    finally:
        fh.close()


def child_snapshot(mode: str, log_dir: str, out: str, rows: str) -> dict[str, Any]:
    from pipeline.deploy.service.snapshot import snapshot
    from tests.deploy.test_snapshot_streaming import _old_snapshot

    run = snapshot if mode == "new" else _old_snapshot
    start = time.perf_counter()
    result = run(Path(log_dir), Path(out), rows=int(rows))
    seconds = time.perf_counter() - start
    names = sorted(w.path.name for w in result.written)
    return {"seconds": seconds, "peak": peak_mib(), "written": len(names),
            "digest": hashlib.sha256("".join(names).encode()).hexdigest()}  # fmt: skip


def bench_snapshot(windows: list[int], records: list[int], old_up_to: int) -> None:
    import shutil

    from pipeline.deploy.service.snapshot import snapshot
    from pipeline.windows import apply_seal, plan_seal

    def both(log_dir: Path, out: Path, rows: int, label: str, n: int) -> None:
        runs = {}
        for mode in ("old", "new"):
            if mode == "old" and n > old_up_to:
                continue
            target = out.with_name(f"{out.name}-{mode}")
            if out.exists():
                shutil.copytree(out, target)
            runs[mode] = child("snapshot", mode, str(log_dir), str(target), str(rows))
        if "old" in runs:
            assert runs["old"]["digest"] == runs["new"]["digest"], "the windows differ"
        for mode, r in runs.items():
            print(
                f"{label:<44}{mode:>5}{r['seconds']:>9.2f}{r['peak']:>10.0f}{r['written']:>9}",
                flush=True,
            )
        if "old" in runs:
            ratio = runs["old"]["seconds"] / runs["new"]["seconds"]
            print(f"{label:<44}  old/new time {ratio:.1f}x, windows identical")

    print(f"{'case':<44}{'code':>5}{'seconds':>9}{'peak MiB':>10}{'windows':>9}")
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp_name:
        tmp = Path(tmp_name)
        for w in windows:  # W windows of 250 records already cut, then 250 new records
            log_dir, out = tmp / f"logs-w{w}", tmp / f"out-w{w}"
            _append_log(log_dir, 0, 250 * w)
            snapshot(log_dir, out, rows=250)
            apply_seal(plan_seal(out), track=False)  # as the monitor workflow does after each
            _append_log(log_dir, 250 * w, 250)
            both(log_dir, out, 250, f"250 new records on top of {w} windows", 250)
        for n in records:  # a log of n records, no window yet, windows of 1000 records
            log_dir, out = tmp / f"logs-n{n}", tmp / f"out-n{n}"
            _append_log(log_dir, 0, n)
            both(log_dir, out, 1000, f"{n} records, windows of 1000", n)


# --------------------------------------------------------------------------------- main
def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        kind, *rest = sys.argv[2:]
        children = {
            "prepare": child_prepare,
            "predict": child_predict,
            "bootstrap": child_bootstrap,
            "snapshot": child_snapshot,
        }
        result = children[kind](*rest)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["prepare", "bootstrap", "snapshot", "predict"])
    parser.add_argument("--rows", type=int, nargs="*")
    parser.add_argument("--old-up-to", type=int, default=1_000_000, help="run the old code up to")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--repeat", type=int, default=2, help="bootstrap: best of")
    parser.add_argument("--windows", type=int, nargs="*", help="snapshot: windows already cut")
    parser.add_argument("--records", type=int, nargs="*", help="snapshot: records in the log")
    parser.add_argument("--project", type=Path, help="predict: a project with models/bundle")
    args = parser.parse_args()
    if args.what == "prepare":
        bench_prepare(args.rows or [1_000_000, 10_000_000], args.old_up_to)
    elif args.what == "bootstrap":
        bench_bootstrap(
            args.rows or [25_000, 50_000, 100_000, 200_000], args.resamples, args.repeat
        )
    elif args.what == "snapshot":
        bench_snapshot(args.windows or [10, 3000], args.records or [100_000, 1_000_000],
                       args.old_up_to)  # fmt: skip
    elif args.what == "predict":
        if args.project is None:
            parser.error("predict needs --project (e.g. bench/bench_predict.py's reproduced copy)")
        bench_predict(args.project, args.rows or [1_000_000, 5_000_000], args.old_up_to)


if __name__ == "__main__":
    main()
