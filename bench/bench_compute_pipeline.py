"""The default pipeline (`dvc repro` of the whole graph, from scratch, in a throw-away copy of
the project) with `compute: local` against `compute: dask` on a 2-worker LocalCluster, in the
same run, interleaved:

* local:          compute: local (the default);
* dask, own:      compute: dask, address null: every stage that computes on the cluster starts
                  (and stops) its own 2-worker LocalCluster, inside the timed run;
* dask, shared:   compute: dask, address = a 2-worker LocalCluster this script starts once,
                  before the clock (how a team runs it: a scheduler that is already up);
each dask mode twice: with `compute.min_rows` as declared in conf/compute/dask.yaml (work on
fewer rows stays in the stage's process and never contacts the cluster: the default data's
`train` stage, 354 rows, runs as with compute: local) and forced to 0 (every candidate's folds
on the cluster: the overhead of the cluster itself).

    .venv/bin/python bench/bench_compute_pipeline.py [--repeat 1]

Goal: dask / local at most 1.2x. Also printed, to say where the overhead goes: how long one
LocalCluster takes to start and stop here, and whether the `train` stage uses one (it does when
the train split has at least min_rows rows; the default monitoring is exact mode, which stays
local; batch scoring is not a stage).
Every run's outputs (models, reports, bundle id) are compared with the local run's: they must
be the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from _project import BIN, copy_project, median, run

OUTPUTS = ("models", "reports", "data/prepared")
DASK = """# @package _global_
defaults:
  - override /compute: dask
compute:
  address: {address}
"""
MODES = {  # name: (address null?, min_rows forced to 0?)
    "own": (True, False),
    "shared": (False, False),
    "own, min_rows 0": (True, True),
    "shared, min_rows 0": (False, True),
}


def digests(project: Path) -> dict[str, str]:
    out = {}
    for top in OUTPUTS:
        for path in sorted((project / top).rglob("*")):
            if path.is_file() and "html" not in path.suffix:
                out[str(path.relative_to(project))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def prepared(tmp: Path, name: str, mode: str, address: str) -> Path:
    project = copy_project(tmp / name)
    if mode != "local":
        own, everything = MODES[mode]
        (project / "conf/local/default.yaml").write_text(
            DASK.format(address="null" if own else address)
            + ("  min_rows: 0\n" if everything else "")
        )
    run([str(BIN / "mlops"), "compose"], project)
    return project


def cluster_start_stop() -> float:
    import distributed

    start = time.perf_counter()
    with (
        distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # an ephemeral port: its HTTP server always starts
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2)
    return time.perf_counter() - start


def main() -> None:
    import distributed
    import pandas as pd
    import yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    modes = ("local", *MODES)
    times: dict[str, list[float]] = {m: [] for m in modes}
    same: dict[str, bool] = {m: True for m in modes}
    with (
        tempfile.TemporaryDirectory() as tmp,
        distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # an ephemeral port: its HTTP server always starts
            silence_logs=logging.ERROR,
        ) as shared,
    ):
        for i in range(args.repeat):
            reference: dict[str, str] | None = None
            for mode in modes:
                name = f"{mode.replace(', ', '-').replace(' ', '')}{i}"
                project = prepared(Path(tmp), name, mode, shared.scheduler_address)
                times[mode].append(run([str(BIN / "dvc"), "repro", "--no-run-cache"], project))
                found = digests(project)
                reference = reference or found
                same[mode] = same[mode] and found == reference
                print(
                    f"run {i} {mode}: {times[mode][-1]:.1f} s (load {os.getloadavg()[0]:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
        candidates = yaml.safe_load((project / "params.yaml").read_text())["candidates"]
        threshold = yaml.safe_load((project / "conf/compute/dask.yaml").read_text())["min_rows"]
        train_rows = len(pd.read_parquet(project / "data/prepared/train.parquet"))
    start_stop = median([cluster_start_stop() for _ in range(2)])
    loc = median(times["local"])
    print(f"default pipeline, `dvc repro` from scratch, {args.repeat} run(s) each, interleaved")
    print(f"compute: local{'':<41} median {loc:6.1f} s  {times['local']}")
    for mode in MODES:
        t = median(times[mode])
        label = mode.replace("own", "LocalCluster per stage").replace("shared", "shared cluster")
        print(
            f"compute: dask, {label:<40} median {t:6.1f} s  {times[mode]}  "
            f"ratio {t / loc:.2f}x (goal <= 1.2x)  outputs identical: {same[mode]}"
        )
    on = "yes" if train_rows >= threshold else "no"
    print(
        f"one 2-worker LocalCluster start + stop here: {start_stop:.1f} s; the train stage: "
        f"{len(candidates)} candidates on {train_rows} rows; its folds on the cluster with "
        f"min_rows {threshold}: {on}, with min_rows 0: yes"
    )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
