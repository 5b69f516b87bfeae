"""`compute: dask` (pipeline/compute.py): training, batch scoring and sketch drift on a Dask
cluster give the same bytes and numbers as `compute: local`, switching it re-runs no stage, and
a lost worker never leaves a partial result.

Loopback only: one LocalCluster on 127.0.0.1 (2 worker processes, 1 thread each) shared by the
module; its workers import the heavy libraries once (`client.run`), before the tests time
anything.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import compute
from pipeline.errors import ConfigError, DataError
from pipeline.params import BatchSettings, ComputeSpec, LocalClusterSpec
from tests.conftest import ROOT, digests, dvc, mlops

distributed = pytest.importorskip("distributed")

WARM = ("pandas", "pyarrow.parquet", "sklearn.ensemble", "sklearn.linear_model", "skops.io")


def _warm(names: tuple[str, ...]) -> int:
    import importlib

    for name in names:
        importlib.import_module(name)
    return os.getpid()


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """A 2-process LocalCluster on 127.0.0.1 and a client of it (the tests' own handle: the
    code under test connects by `compute.address`)."""
    import logging

    with (
        distributed.LocalCluster(
            host="127.0.0.1",
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        client.run(_warm, WARM)
        yield client


def spec(client: distributed.Client, partition_rows: int = 2_000) -> ComputeSpec:
    return ComputeSpec(
        "dask", client.scheduler.address, 10.0, LocalClusterSpec(2, 1, "1GiB"), partition_rows
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tasks_run(client: distributed.Client) -> int:
    """Tasks the scheduler has finished so far: proof that work went to the cluster."""
    return int(
        client.run_on_scheduler(
            lambda dask_scheduler: sum(
                1 for entry in dask_scheduler.transition_log if entry[2] == "memory"
            )
        )
    )


# ---------------------------------------------------------------------------- config and errors
def test_no_stage_reads_compute() -> None:
    """Where to compute is never a stage's params dependency: switching it re-runs nothing."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        params = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
        assert not [p for p in params if p.split(".")[0] == "compute"], name


def test_an_unreachable_scheduler_is_a_config_error_naming_the_address() -> None:
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = ComputeSpec("dask", f"tcp://127.0.0.1:{port}", 0.5, None, 1000)
    refused = pytest.raises(ConfigError, match=r"compute\.address: cannot reach the Dask scheduler")
    with refused, compute.session(unreachable):
        pass


def test_without_dask_installed_the_error_names_the_make_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    dask = ComputeSpec("dask", None, 1.0, LocalClusterSpec(1, 1, "1GiB"), 1)
    with pytest.raises(ConfigError, match="not installed") as caught, compute.session(dask):
        pass
    assert "make install-compute-dask" in (caught.value.hint or "")


def test_local_compute_never_imports_dask() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pipeline import compute; from pipeline.params import ComputeSpec\n"
        "with compute.session(ComputeSpec('local', None, 0.0, None, None)) as c: assert c is None\n"
        "with compute.training_workers(ComputeSpec('local', None, 0.0, None, None), 2): pass\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------------- batch scoring
@pytest.fixture(scope="module")
def scoring_input(tmp_path_factory: pytest.TempPathFactory, template_project: Path) -> Path:
    """The train split 20 times, two rows missing a feature, in row groups of 1,700: the
    cluster's partitions start and end inside row groups and the local chunks cross them."""
    frame = pd.read_parquet(template_project / "data/prepared/train.parquet")
    big = pd.concat([frame] * 20, ignore_index=True)
    big.loc[[5, 4_000], big.columns[0]] = np.nan  # a required feature missing: two bad rows
    path = tmp_path_factory.mktemp("scoring") / "input.parquet"
    big.to_parquet(path, row_group_size=1_700)
    return path


@pytest.mark.parametrize("on_bad_rows", ["skip", "fail"])
def test_batch_scoring_on_dask_is_byte_identical(
    cluster: distributed.Client,
    template_project: Path,
    scoring_input: Path,
    tmp_path: Path,
    on_bad_rows: str,
) -> None:
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    bundle = load_bundle(template_project / "models/bundle")
    settings = BatchSettings(on_bad_rows, "reject", 1_000)
    outcomes = {}
    for kind in ("local", "dask"):
        out = tmp_path / f"{kind}.parquet"
        before = tasks_run(cluster)
        try:
            where = spec(cluster) if kind == "dask" else None
            result = batch.predict_file(bundle, scoring_input, out, settings, None, where)
            outcomes[kind] = ("written", sha(out), result.to_dict())
        except batch.BadRowsError as exc:
            assert not out.exists()
            outcomes[kind] = ("refused", str(exc), exc.result.to_dict())
        ran = tasks_run(cluster) - before
        assert ran >= (4 if kind == "dask" else 0), (kind, ran)  # 7,080 rows / 2,000 a task
    assert outcomes["dask"] == outcomes["local"]
    assert outcomes["local"][0] == ("written" if on_bad_rows == "skip" else "refused")
    assert outcomes["local"][2]["rows"] == 7_080


@pytest.mark.slow  # a forced training stage and two `mlops predict` runs: about 90 s on 2 cores
def test_mlops_predict_and_training_on_dask_rerun_nothing_and_match(
    cluster: distributed.Client, project: Path, scoring_input: Path
) -> None:
    """conf/local/ switches the whole project to the cluster: `dvc status` stays clean, a
    forced re-run of a training stage with a grid search (its cross-validation on the
    workers) writes the same model and record bytes, and `mlops predict` the same file."""
    local_out = project / "local.parquet"
    mlops("predict", "--bundle", "models/bundle", "--on-bad-rows", "skip",
          "--input", str(scoring_input), "--output", str(local_out), cwd=project)  # fmt: skip
    before = digests(project, ("models/**/*", "reports/**/*", "data/**/*"))
    overrides = project / "conf/local/default.yaml"
    overrides.write_text(
        overrides.read_text().replace(
            "# @package _global_\n",
            "# @package _global_\ndefaults:\n  - override /compute: dask\n"
            f"compute:\n  address: {cluster.scheduler.address}\n  partition_rows: 2000\n",
        )
    )
    mlops("compose", cwd=project)
    assert "compute:\n  kind: dask" in (project / "params.yaml").read_text()
    assert "up to date" in dvc("status", cwd=project).stdout
    ran = tasks_run(cluster)
    repro = dvc("repro", "--force", "--single-item", "train@logistic_regression", cwd=project)
    assert "on a Dask cluster" in repro.stdout + repro.stderr
    assert tasks_run(cluster) - ran >= 4 * 3  # a 4-point grid over 3 folds, at least
    dask_out = project / "dask.parquet"
    mlops("predict", "--bundle", "models/bundle", "--on-bad-rows", "skip",
          "--input", str(scoring_input), "--output", str(dask_out), cwd=project)  # fmt: skip
    assert sha(dask_out) == sha(local_out)
    assert digests(project, ("models/**/*", "reports/**/*", "data/**/*")) == before
    assert "up to date" in dvc("status", cwd=project).stdout


# ---------------------------------------------------------------------------------- sketch drift
def test_sketch_drift_on_dask_equals_local(cluster: distributed.Client, tmp_path: Path) -> None:
    from pipeline.monitor.drift import SketchSettings
    from pipeline.monitor.sketch import compute_drift_parquet
    from pipeline.profile.reference import build_reference
    from tests.monitor.conf import drift_settings

    rng = np.random.default_rng(12)
    kinds = {"x": "numeric", "i": "numeric", "c": "categorical"}
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=20_000),
            "i": rng.integers(0, 50, 20_000),
            "c": rng.choice(["a", "b"], 20_000),
        }
    )
    folder = tmp_path / "current"
    folder.mkdir()
    for part in range(4):
        n = 15_000
        pd.DataFrame(
            {
                "x": rng.normal(0.05 * part, 1, n),
                "i": rng.integers(0, 55, n),
                "c": rng.choice(["a", "b", None], n),
            }
        ).to_parquet(folder / f"part-{part}.parquet")
    reference = build_reference(ref, kinds, mode="sketch", sketch_k=1024)
    sketch = SketchSettings(k=1024, tail=64, batch_rows=4_000, distinct_limit=100)
    settings = drift_settings(mode="sketch", sketch=sketch)
    local = compute_drift_parquet(reference, folder, settings)
    ran = tasks_run(cluster)
    on_dask = compute_drift_parquet(reference, folder, settings, compute=spec(cluster))
    assert tasks_run(cluster) - ran >= 4  # one task per file
    assert on_dask.to_dict() == local.to_dict()
    assert local.by_column["x"].error_bound > 0  # x was sketched: its bound is certified, not 0


# ---------------------------------------------------------------------------------- lost workers
def test_a_worker_killed_while_scoring_never_leaves_a_partial_result(
    cluster: distributed.Client, template_project: Path, scoring_input: Path, tmp_path: Path
) -> None:
    """SIGKILL one worker process while it scores: Dask re-runs its tasks on the other worker
    (its nanny restarts it), and the file is the local run's bytes; or the command fails and
    no output file exists. Never a file with rows missing."""
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    bundle = load_bundle(template_project / "models/bundle")
    settings = BatchSettings("skip", "flag", 200)
    expected = tmp_path / "expected.parquet"
    batch.predict_file(bundle, scoring_input, expected, settings)
    out = tmp_path / "out.parquet"
    outcome: dict[str, object] = {}

    def score() -> None:
        try:
            outcome["result"] = batch.predict_file(
                bundle, scoring_input, out, settings, None, spec(cluster, partition_rows=200)
            )
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcome["error"] = exc

    pids = cluster.run(os.getpid)
    worker = threading.Thread(target=score)
    worker.start()
    deadline = time.monotonic() + 30
    victim = None
    while victim is None and time.monotonic() < deadline and worker.is_alive():
        busy = [w for w, tasks in cluster.processing().items() if tasks]
        victim = busy[0] if busy else None
        time.sleep(0.01)
    assert victim is not None, "no task was seen running"
    os.kill(pids[victim], signal.SIGKILL)
    worker.join(120)
    assert not worker.is_alive()
    if "error" in outcome:
        assert not out.exists(), "a failed run left its output"
    else:
        assert sha(out) == sha(expected)
    cluster.wait_for_workers(2, timeout=60)  # the nanny brought it back, for the next test


def test_bad_parquet_input_is_a_data_error_before_any_task(
    cluster: distributed.Client, template_project: Path, tmp_path: Path
) -> None:
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    bundle = load_bundle(template_project / "models/bundle")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        batch.predict_file(
            bundle, bad, tmp_path / "o.parquet", BatchSettings("skip", "flag", 10), None,
            spec(cluster),
        )  # fmt: skip
    assert not (tmp_path / "o.parquet").exists()
