"""Where work runs (`compute` in conf/): here, or on a Dask cluster. The one owner of connecting
to a scheduler, starting a `distributed.LocalCluster`, and handing work to it.

Why one module: training (joblib's Dask backend for cross-validation and searches), batch
scoring (Parquet partitions) and sketch-mode drift (one summary per file) all need the same
client, the same error when the scheduler cannot be reached, and the same rule for running
tasks: results come back in submission order, with a bounded number in flight, so the client
never holds more than a few partitions and what is written never depends on which worker
finished first. Choosing where to compute never changes a result (no stage lists `compute`
among its params), and `compute: local` never imports dask.

A scheduler at `compute.address` must see the same files as this process (a shared filesystem,
or the S3 remote): tasks name paths, they do not ship data.

The cluster is used where it pays (`on_cluster`): work on fewer than `compute.min_rows` input
rows stays in this process, and such work never starts, connects to or imports the cluster.
Starting a LocalCluster and warming its workers costs seconds, and a fold on a few hundred rows
costs milliseconds against Dask's per-task overhead and the scattering of its data; the
default pipeline's training stages (354 rows) therefore run exactly as with `compute: local`.
Where the work runs never changes a byte of its result, so the threshold is free to move.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import ComputeError, ConfigError
from pipeline.run import close_fold_pools, fold_workers

if TYPE_CHECKING:
    from distributed import Client

    from pipeline.params import ComputeSpec

R = TypeVar("R")

INSTALL_HINT = "install the Dask engine with `make install-compute-dask`, or set compute: local"
IN_FLIGHT_PER_WORKER = 2  # tasks queued per worker thread: keeps every worker busy, memory bounded


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"compute.kind is dask but the Dask engine is not installed ({exc})",
            hint=INSTALL_HINT,
        ) from exc
    return distributed


@contextlib.contextmanager
def session(spec: ComputeSpec) -> Iterator[Client | None]:
    """A distributed Client for `spec` (None for `compute: local`), closed on exit: connected
    to `compute.address`, or to a LocalCluster it starts on 127.0.0.1 (and stops) when the
    address is null. A scheduler that cannot be reached is a ConfigError (exit 2) naming
    `compute.address`."""
    if spec.kind == "local":
        yield None
        return
    distributed = _distributed()
    if spec.address is None:
        assert spec.local_cluster is not None
        local = spec.local_cluster
        with (
            distributed.LocalCluster(
                host="127.0.0.1",
                n_workers=local.n_workers,
                threads_per_worker=local.threads_per_worker,
                memory_limit=local.memory_limit,
                processes=True,
                dashboard_address="127.0.0.1:0",  # an ephemeral port: its HTTP server always starts
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster, set_as_default=True) as client,
        ):
            yield client
        return
    try:
        client = distributed.Client(
            spec.address, timeout=spec.connect_timeout_s, set_as_default=True
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"compute.address: cannot reach the Dask scheduler at {spec.address!r} "
            f"within {spec.connect_timeout_s:g}s ({type(exc).__name__}: {exc})",
            hint="start the scheduler (`dask scheduler`) and its workers, fix compute.address "
            "in conf/local/default.yaml, or set it to null to start a LocalCluster here",
        ) from exc
    with client:
        yield client


def on_cluster(spec: ComputeSpec | None, rows: int) -> bool:
    """Whether work on `rows` input rows goes to the cluster: `compute: dask` and at least
    `compute.min_rows` rows. Below it the caller computes in this process (and never calls
    `session`): the cluster would cost more than the work (see the module docstring)."""
    return spec is not None and spec.kind == "dask" and rows >= spec.min_rows


@contextlib.contextmanager
def training_pool(
    spec: ComputeSpec, n_jobs: int | None, rows: int
) -> Iterator[Callable[[], contextlib.AbstractContextManager[object]]]:
    """Where a training stage's parallel fits (cross-validation folds, search candidates, of
    every candidate it fits) on `rows` training rows run. Yields a function giving the context
    each fit's parallel part runs in: `compute: local`, or fewer rows than `compute.min_rows`,
    keeps `pipeline.run.fold_workers` (the runner's fork server or joblib's own workers);
    otherwise `compute: dask` hands them to the cluster through joblib's Dask backend, with one
    cluster session (connected or started once) for the whole stage. The final refit stays in
    the stage's process, outside that context, and the folds' scores are the same numbers,
    so the model file and the candidate record are byte-identical either way."""
    if not on_cluster(spec, rows):
        try:
            yield lambda: fold_workers(n_jobs)  # one pool for every fit (`fold_workers`)
        finally:
            close_fold_pools()
        return
    with session(spec):
        yield _dask_joblib


@contextlib.contextmanager
def _dask_joblib() -> Iterator[object]:
    """joblib's Dask backend (on the session's default client) scatters every argument over
    1 kB (the training data) to one worker: such data has no recipe, so a worker lost with it
    cancels the search; the stage then stops cleanly (`lost_work`) before writing anything.
    Fits lost with a worker but whose inputs survive are re-run by Dask, and the search
    completes with the same bytes."""
    import joblib

    with joblib.parallel_config(backend="dask"), lost_work("training"):
        yield None


@contextlib.contextmanager
def lost_work(what: str) -> Iterator[None]:
    """Work the cluster lost and could not re-run becomes a ComputeError (exit 1, no
    traceback); the caller has written nothing (its outputs are atomic)."""
    distributed = _distributed()
    lost = (
        distributed.client.FutureCancelledError,
        distributed.KilledWorker,
        distributed.comm.CommClosedError,
    )
    try:
        yield
    except lost as exc:
        raise ComputeError(
            f"compute: the Dask cluster lost {what} work it could not re-run "
            f"({type(exc).__name__}: {exc}); nothing was written"
        ) from exc


def workers(client: Client) -> int:
    """Worker threads in the cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def ordered_map(
    client: Client | None,
    func: Callable[..., R],
    items: Iterable[Sequence[Any]],
    *,
    name: str,
    window: int | None = None,
) -> Iterator[R]:
    """`func(*item)` for every item, yielded in the order of `items`: in this process without
    a client, else as tasks on the cluster with at most `window` (default: two per worker
    thread) submitted and not yet yielded, so neither the client nor the scheduler ever holds
    more than that many results. A task whose worker dies is re-run by Dask elsewhere (up to
    `distributed.scheduler.allowed-failures` times); a task that fails, or runs out of
    retries, raises here, and the caller writes nothing (its output is atomic)."""
    if client is None:
        for item in items:
            yield func(*item)
        return
    import uuid

    size = window or IN_FLIGHT_PER_WORKER * workers(client)
    run = uuid.uuid4().hex  # task keys unique to this call: clients may share a scheduler
    pending: deque[Any] = deque()
    try:
        with lost_work(name):
            for i, item in enumerate(items):
                pending.append(client.submit(func, *item, key=f"{name}-{run}-{i}", pure=False))
                if len(pending) >= size:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
