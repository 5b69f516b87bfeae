"""Batch scoring on a Dask LocalCluster of 1 and of 2 workers against local scoring, same run,
same file.

    .venv/bin/python bench/bench_compute_scoring.py --bundle models/bundle            # 2M rows
    .venv/bin/python bench/bench_compute_scoring.py --bundle models/bundle --rows 20000000

The input is `--rows` rows of the bundle's 30 feature columns (the breast-cancer model: the
issue's 20M x 30), drawn with replacement (fixed seed) from the prepared train split and
written once as Parquet (row groups of 1Mi rows), generated block by block so the generator
never holds the whole table. Reported: rows/s of `predict_file` with `compute: local` and with
`compute: dask` (`--workers` counts, default 1 and 2, x 1 thread: a fresh LocalCluster on
127.0.0.1 each, started before the clock), the ratios, whether the outputs are byte-identical,
and the peak RSS of this process (local) and of each worker process (dask: `ru_maxrss` read
inside each worker after the run). For the scaling model in bench/README.md: the tasks and the
bytes they send back (the scored rows, as Arrow: the output's uncompressed size). The input is
written under `--workdir` (default: a temporary folder under /tmp, deleted at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak RSS since it started its program: VmHWM, which exec resets (a
    worker's `ru_maxrss` would carry the RSS of the process that spawned it: here, the client)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_input(path: Path, rows: int, bundle_path: Path, train: Path) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.deploy.bundle import load_bundle

    names = load_bundle(bundle_path).signature.names
    source = pd.read_parquet(train, columns=names)
    rng = np.random.default_rng(0)
    block = 1 << 20
    writer = None
    for start in range(0, rows, block):
        n = min(block, rows - start)
        table = pa.Table.from_pandas(
            source.iloc[rng.integers(0, len(source), n)].reset_index(drop=True),
            preserve_index=False,
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, default=Path("models/bundle"))
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.parquet"))
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--partition-rows", type=int, default=200_000)  # conf/compute/dask.yaml
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, help="keep the input here (default: a tmp dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-compute-", dir="/tmp"))
    try:
        run(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    import distributed

    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle
    from pipeline.params import BatchSettings, ComputeSpec, LocalClusterSpec

    print(f"load average at the start: {os.getloadavg()}", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"input-{args.rows}.parquet"
    if not source.exists():
        t = time.perf_counter()
        make_input(source, args.rows, args.bundle, args.train)
        print(f"input: {args.rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB "
              f"({time.perf_counter() - t:.0f}s to write)")  # fmt: skip
    bundle = load_bundle(args.bundle)
    settings = BatchSettings("skip", "flag", args.chunk_rows)

    t = time.perf_counter()
    batch.predict_file(bundle, source, work / "local.parquet", settings)
    local_s = time.perf_counter() - t
    local_rss = peak_rss_mib()
    print(
        f"local: {args.rows / local_s:,.0f} rows/s ({local_s:.1f}s), peak RSS {local_rss:.0f} MiB"
        f"  load {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    expected = digest(work / "local.parquet")
    same_all = True
    for n in args.workers:
        with (
            distributed.LocalCluster(
                host="127.0.0.1", n_workers=n, threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0",  # ephemeral: its HTTP server always starts
                silence_logs=logging.ERROR, memory_limit="4GiB",
            ) as cluster,
            distributed.Client(cluster) as client,
        ):  # fmt: skip
            client.run(lambda: __import__("pipeline.deploy.batch"))  # imports before the clock
            spec = ComputeSpec(
                "dask", cluster.scheduler_address, 10.0, LocalClusterSpec(n, 1, "4GiB"),
                args.partition_rows, 0,
            )  # fmt: skip
            out = work / f"dask-{n}.parquet"
            t = time.perf_counter()
            batch.predict_file(bundle, source, out, settings, None, spec)
            dask_s = time.perf_counter() - t
            workers_rss = client.run(peak_rss_mib)
        same = digest(out) == expected
        same_all &= same
        print(
            f"dask ({n} worker(s) x 1 thread): {args.rows / dask_s:,.0f} rows/s ({dask_s:.1f}s); "
            f"local/dask time {local_s / dask_s:.2f}x; byte-identical: {same}"
            f"  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for worker, rss in workers_rss.items():
            print(f"  worker {worker}: peak RSS {rss:.0f} MiB (goal <= 1024)")
        out.unlink()
    import pyarrow.parquet as pq

    scored = pq.ParquetFile(work / "local.parquet")
    first = scored.read_row_group(0)  # as Arrow, as the tasks send the scored rows back
    arrow = first.nbytes / first.num_rows * args.rows
    tasks = -(-args.rows // (max(1, args.partition_rows // args.chunk_rows) * args.chunk_rows))
    print(
        f"tasks: {tasks} of {args.partition_rows:,} rows; sent back to this process: "
        f"{arrow / 2**20:.0f} MiB of scored rows ({arrow / args.rows:.0f} B/row, "
        f"{arrow / tasks / 2**20:.0f} MiB per task); input {source.stat().st_size / 2**20:.0f} MiB"
    )
    print(f"  client (this process, all runs): peak RSS {peak_rss_mib():.0f} MiB")
    print(f"load average at the end: {os.getloadavg()}")
    if not same_all:
        sys.exit(1)


if __name__ == "__main__":
    main()
