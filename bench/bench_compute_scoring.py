"""Batch scoring on a 2-worker Dask LocalCluster against local scoring, same run, same file.

    .venv/bin/python bench/bench_compute_scoring.py --bundle models/bundle            # 2M rows
    .venv/bin/python bench/bench_compute_scoring.py --bundle models/bundle --rows 20000000

The input is `--rows` rows of the bundle's 30 feature columns (the breast-cancer model: the
issue's 20M x 30), drawn with replacement (fixed seed) from the prepared train split and
written once as Parquet (row groups of 1Mi rows), generated block by block so the generator
never holds the whole table. Reported: rows/s of `predict_file` with `compute: local` and with
`compute: dask` (2 workers x 1 thread, LocalCluster on 127.0.0.1, started before the clock), the
ratio, whether the two outputs are byte-identical, and the peak RSS of this process (local) and
of each worker process (dask: `ru_maxrss` read inside each worker after the run).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
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
    parser.add_argument("--partition-rows", type=int, default=500_000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()

    import distributed

    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle
    from pipeline.params import BatchSettings, ComputeSpec, LocalClusterSpec

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-compute-"))
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

    with (
        distributed.LocalCluster(
            host="127.0.0.1", n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR, memory_limit="4GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        client.run(lambda: __import__("pipeline.deploy.batch"))  # imports before the clock
        spec = ComputeSpec(
            "dask", cluster.scheduler_address, 10.0, LocalClusterSpec(2, 1, "4GiB"),
            args.partition_rows,
        )  # fmt: skip
        t = time.perf_counter()
        batch.predict_file(bundle, source, work / "dask.parquet", settings, None, spec)
        dask_s = time.perf_counter() - t
        workers_rss = client.run(peak_rss_mib)
    client_rss = peak_rss_mib()

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    same = digest(work / "local.parquet") == digest(work / "dask.parquet")
    print(
        f"local: {args.rows / local_s:,.0f} rows/s ({local_s:.1f}s), peak RSS {local_rss:.0f} MiB"
    )
    print(f"dask (2 workers x 1 thread): {args.rows / dask_s:,.0f} rows/s ({dask_s:.1f}s)")
    print(f"ratio dask/local throughput: {local_s / dask_s:.2f}x; outputs byte-identical: {same}")
    for worker, rss in workers_rss.items():
        print(f"  worker {worker}: peak RSS {rss:.0f} MiB (goal <= 1024)")
    print(f"  client (this process, both runs): peak RSS {client_rss:.0f} MiB")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
