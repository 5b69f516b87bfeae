"""Sketch-mode drift of a large partitioned dataset on a Dask LocalCluster of 1 and of 2 workers
against the same in this process, same run.

    .venv/bin/python bench/bench_compute_sketch.py                       # 10M rows
    .venv/bin/python bench/bench_compute_sketch.py --rows 100000000      # the issue's 100M

The current data (bench_drift's 15 numeric + 5 categorical columns, drift injected in five) is
generated partition by partition on the cluster's workers: each task writes one Parquet file of
`--partition-rows` rows (a fixed seed per partition) into a folder under `--workdir` (default: a
temporary folder under /tmp, deleted at the end), so no process ever holds more than one
partition. Then `compute_drift_parquet` on the folder (what `mlops monitor` runs in sketch mode,
one task per file, the summaries merged here in file order):

* local:   `compute: local`, in this process (its peak RSS: VmHWM reset just before);
* dask:    `compute: dask` (min_rows 0) on a fresh LocalCluster of each `--workers` count
           (1 thread each, on 127.0.0.1, started and warmed before the clock); the peak RSS of
           each worker process is read inside it after the run (goal: at most 1 GiB).

Printed: wall time and rows/s of each, the ratio to local, the peak RSS, whether every report
(verdicts, statistics, certified bounds) equals the local one, and for the scaling model in
bench/README.md the bytes each task moves (the reference sent in, the summaries sent back).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_drift import SEED, _reset_peak, _status_kib, drift_settings, kinds, make_frame


def peak_rss_mib() -> float:
    """This process's peak RSS since it started its program: VmHWM, which exec resets (a
    worker's `ru_maxrss` would carry the RSS of the process that spawned it: here, the client)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_part(folder: str, index: int, rows: int) -> int:
    """On a worker: partition `index` of the current data, written as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(
        make_frame(rows, SEED + 10 + index, True, prediction=False), preserve_index=False
    )
    path = Path(folder) / f"part-{index:05d}.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=256_000)
    tmp.rename(path)
    return rows


def cluster(workers: int) -> Any:
    import distributed

    return distributed.LocalCluster(
        host="127.0.0.1",
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # ephemeral: its HTTP server always starts
        silence_logs=logging.ERROR,
        memory_limit="4GiB",
    )


def warm() -> int:
    import pipeline.monitor.sketch  # noqa: F401 - imports before the clock

    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partition-rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a tmp dir)")
    args = parser.parse_args()

    import distributed

    from pipeline.compute import ordered_map
    from pipeline.monitor.sketch import compute_drift_parquet, summarise_file
    from pipeline.params import ComputeSpec, LocalClusterSpec
    from pipeline.profile.reference import build_reference

    print(f"load average at the start: {os.getloadavg()}", flush=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sketch-", dir="/tmp"))
    folder = work / f"current-{args.rows}"
    try:
        sizes = [
            min(args.partition_rows, args.rows - start)
            for start in range(0, args.rows, args.partition_rows)
        ]
        if not folder.is_dir():
            folder.mkdir(parents=True)
            t = time.perf_counter()
            with cluster(2) as gen, distributed.Client(gen) as client:
                items = [(str(folder), i, n) for i, n in enumerate(sizes)]
                assert sum(ordered_map(client, make_part, items, name="bench-gen")) == args.rows
            size = sum(p.stat().st_size for p in folder.iterdir())
            took = time.perf_counter() - t
            print(
                f"input: {args.rows:,} rows x 20 columns in {len(sizes)} files, "
                f"{size / 2**30:.2f} GiB, generated on 2 workers in {took:.0f} s",
                flush=True,
            )
        ref = make_frame(1_000_000, SEED, drift=False, prediction=False)
        reference = build_reference(ref, kinds(ref), mode="sketch")
        del ref
        settings = drift_settings(mode="sketch")
        first = sorted(folder.glob("*.parquet"))[0]
        ref_bytes = len(pickle.dumps(reference))
        sent = len(pickle.dumps((str(first), settings, settings.sketch.batch_rows)))
        back = len(pickle.dumps(summarise_file(reference, str(first), settings, 100_000)))

        before = _reset_peak() / 1024
        t = time.perf_counter()
        local = compute_drift_parquet(reference, folder, settings).to_dict()
        local_s = time.perf_counter() - t
        local_peak = _status_kib("VmHWM") / 1024
        print(
            f"local (this process): {local_s:7.1f} s  {args.rows / local_s:>12,.0f} rows/s  "
            f"peak RSS {local_peak:.0f} MiB (before: {before:.0f})  "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        same_all = True
        for n in args.workers:
            with cluster(n) as local_cluster, distributed.Client(local_cluster) as client:
                client.run(warm)
                spec = ComputeSpec(
                    "dask",
                    local_cluster.scheduler_address,
                    10.0,
                    LocalClusterSpec(n, 1, "4GiB"),
                    500_000,
                    0,
                )
                t = time.perf_counter()
                found = compute_drift_parquet(reference, folder, settings, compute=spec).to_dict()
                seconds = time.perf_counter() - t
                peaks = client.run(peak_rss_mib)
            same = found == local
            same_all &= same
            print(
                f"dask, {n} worker(s) x 1 thread: {seconds:7.1f} s  "
                f"{args.rows / seconds:>12,.0f} rows/s  local/dask {local_s / seconds:.2f}x  "
                f"report equal to local: {same}  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            for worker, rss in peaks.items():
                print(f"    worker {worker}: peak RSS {rss:.0f} MiB (goal <= 1024)")
        verdicts = local["dataset"]["drifted_columns"]
        print(
            f"tasks: {len(sizes)} (one per file); the reference, {ref_bytes / 1024:.0f} KiB, "
            f"sent once to each worker; per task, sent {sent / 1024:.1f} KiB (path, settings), "
            f"returned {back / 1024:.0f} KiB (the summaries); "
            f"drifted columns: {', '.join(verdicts)}"
        )
        print(f"this process (client): peak RSS {peak_rss_mib():.0f} MiB")
        print(f"load average at the end: {os.getloadavg()}")
        if not same_all:
            sys.exit(1)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
