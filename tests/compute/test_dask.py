"""`compute: dask` (pipeline/compute.py): training, batch scoring and sketch drift on a Dask
cluster give the same bytes and numbers as `compute: local`, switching it re-runs no stage, and
a lost worker never leaves a partial result.

Loopback only: one LocalCluster on 127.0.0.1 (2 worker processes, 1 thread each) shared by the
module; its workers import the heavy libraries once (`client.run`), before the tests time
anything.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
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


def _restore_environ(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _environ_unchanged() -> Iterator[None]:
    """distributed's nannies set `OMP_NUM_THREADS=1` (and other limits) in the environment of
    the process that starts a LocalCluster, and leave them: every later subprocess of this
    pytest worker (a `dvc repro`, a stage runner) would then fit with one OpenMP thread, and
    HistGradientBoosting records its thread count in the model: other bytes. Restored after
    each test (and after the shared cluster starts)."""
    saved = dict(os.environ)
    yield
    _restore_environ(saved)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """A 2-process LocalCluster on 127.0.0.1 and a client of it (the tests' own handle: the
    code under test connects by `compute.address`).

    Its worker processes, and those the nanny restarts after a test kills one, fork from a
    fork server that has imported the heavy libraries and this module once (distributed's
    `multiprocessing-method: forkserver`, which it uses for its own test suite) instead of
    each starting an interpreter that imports them: with spawn, 8 worker processes a session
    spent about 45 of their 66 core-s importing. The server starts with the first worker,
    after the nanny has set its pre-spawn environment (`OMP_NUM_THREADS=1`, ...), so the
    libraries load with the same thread limits as under spawn."""
    import logging

    import dask
    from distributed.utils import get_mp_context

    saved = dict(os.environ)
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context().set_forkserver_preload(["distributed", *WARM, __name__])
        with (
            distributed.LocalCluster(
                host="127.0.0.1",
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # an ephemeral port: its HTTP server starts
                silence_logs=logging.ERROR,
            ) as local,
            distributed.Client(local, set_as_default=False) as client,
        ):
            _restore_environ(saved)
            client.run(_warm, WARM)
            yield client
    _restore_environ(saved)


def spec(client: distributed.Client, partition_rows: int = 2_000, min_rows: int = 0) -> ComputeSpec:
    """`compute: dask` at the test cluster; `min_rows` 0: every piece of work goes to it."""
    return ComputeSpec(
        "dask",
        client.scheduler.address,
        10.0,
        LocalClusterSpec(2, 1, "1GiB"),
        partition_rows,
        min_rows,
    )


def unreachable() -> str:
    """The address of a free port on 127.0.0.1 nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


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
def use_dask(project: Path, compute: str) -> None:
    """Make `compute: dask` the project copy's machine-local choice (conf/local/, as a user
    would), with the `compute:` keys given as YAML lines, and compose it."""
    overrides = project / "conf/local/default.yaml"
    overrides.write_text(
        overrides.read_text().replace(
            "# @package _global_\n",
            f"# @package _global_\ndefaults:\n  - override /compute: dask\ncompute:\n{compute}",
        )
    )
    mlops("compose", cwd=project)


def test_no_stage_reads_compute() -> None:
    """Where to compute is never a stage's params dependency: switching it re-runs nothing."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        params = [p if isinstance(p, str) else next(iter(p)) for p in body.get("params", [])]
        assert not [p for p in params if p.split(".")[0] == "compute"], name


def test_an_unreachable_scheduler_is_a_config_error_naming_the_address() -> None:
    nobody = ComputeSpec("dask", unreachable(), 0.5, None, 1000, 0)
    refused = pytest.raises(ConfigError, match=r"compute\.address: cannot reach the Dask scheduler")
    with refused, compute.session(nobody):
        pass


def test_without_dask_installed_the_error_names_the_make_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    dask = ComputeSpec("dask", None, 1.0, LocalClusterSpec(1, 1, "1GiB"), 1, 0)
    with pytest.raises(ConfigError, match="not installed") as caught, compute.session(dask):
        pass
    assert "make install-compute-dask" in (caught.value.hint or "")


def test_local_compute_never_imports_dask() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pipeline import compute; from pipeline.params import ComputeSpec\n"
        "local = ComputeSpec('local', None, 0.0, None, None, 0)\n"
        "with compute.session(local) as c: assert c is None\n"
        "with compute.training_pool(local, 2, 10**9) as workers, workers(): pass\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1", "expected a number >= 0 (got -1)"),
        ("lots", "expected a value of type integer (got 'lots')"),
        ("0.5", "expected a value of type integer (got 0.5)"),
    ],
)
def test_min_rows_is_validated_with_the_key_named(value: str, expected: str) -> None:
    from pipeline import config
    from pipeline.validation import validate_params

    composed = config.compose(ROOT, ["compute=dask", f"compute.min_rows={value}"])
    issues = validate_params(composed.data, composed.locate, root=ROOT, missing=composed.missing)
    message = ConfigError(issues).render()
    assert f"override 'compute.min_rows={value}': compute.min_rows: {expected}" in message


def test_min_rows_decides_where_training_runs(cluster: distributed.Client) -> None:
    """Fewer training rows than `compute.min_rows`: the fits stay here, and the scheduler
    (unreachable) is never contacted; from `min_rows` rows on they are tasks on the cluster."""
    import joblib
    from joblib.parallel import get_active_backend

    nobody = ComputeSpec("dask", unreachable(), 0.5, None, 1000, 456)
    assert not compute.on_cluster(nobody, 455) and compute.on_cluster(nobody, 456)
    with compute.training_pool(nobody, 2, 455) as workers, workers():
        assert "Dask" not in type(get_active_backend()[0]).__name__
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    ran = tasks_run(cluster)
    with compute.training_pool(spec(cluster, min_rows=455), 2, 455) as workers, workers():
        assert "Dask" in type(get_active_backend()[0]).__name__
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    assert tasks_run(cluster) - ran >= 1


def test_a_training_stage_below_min_rows_never_contacts_the_cluster(
    project: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The default threshold with an unreachable scheduler: the stage (a few hundred rows)
    computes in its own process, says nothing of a cluster, and writes the bytes it wrote
    before. (Run in this process: the stage's `main`, without an interpreter's start-up.)"""
    from pipeline.develop import train

    outputs = ("models/candidates/**/*",)
    before = digests(project, outputs)
    use_dask(project, f"  address: {unreachable()}\n  connect_timeout_s: 0.5\n")
    assert "compute:\n  kind: dask" in (project / "params.yaml").read_text()
    monkeypatch.chdir(project)
    shutil.rmtree(project / "models/kept")  # nothing kept: every candidate is fitted
    train.main([])
    said = capfd.readouterr()
    assert "train: 3 of 3 candidate(s) fitted" in said.err
    assert "Dask" not in said.err + said.out
    assert digests(project, outputs) == before


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


def score_local_and_on_dask(
    cluster: distributed.Client, project: Path, source: Path, tmp_path: Path, on_bad_rows: str
) -> dict[str, tuple[str, str, dict[str, object]]]:
    """`source` scored in this process, on the cluster, and with a `compute.min_rows` one
    above its rows (small: an unreachable scheduler, never contacted): per kind, ("written",
    the output's digest, the result) or ("refused", the message, the result), with no output
    left behind by a refusal. The cluster really ran the dask one (at least 4 tasks: 7,080
    rows / 2,000), and nothing else."""
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    bundle = load_bundle(project / "models/bundle")
    settings = BatchSettings(on_bad_rows, "reject", 1_000)
    where = {
        "local": None,
        "dask": spec(cluster, min_rows=7_080),  # as many rows as the source: on the cluster
        "small": ComputeSpec("dask", unreachable(), 0.5, None, 2_000, 7_081),  # one too few
    }
    outcomes = {}
    for kind, compute_spec in where.items():
        out = tmp_path / f"{kind}.parquet"
        before = tasks_run(cluster)
        try:
            result = batch.predict_file(bundle, source, out, settings, None, compute_spec)
            outcomes[kind] = ("written", sha(out), result.to_dict())
        except batch.BadRowsError as exc:
            assert not out.exists()
            outcomes[kind] = ("refused", str(exc), exc.result.to_dict())
        ran = tasks_run(cluster) - before
        assert ran >= 4 if kind == "dask" else ran == 0, (kind, ran)
    return outcomes


@pytest.mark.parametrize("on_bad_rows", ["skip", "fail"])
def test_batch_scoring_on_dask_is_byte_identical(
    cluster: distributed.Client,
    template_project: Path,
    scoring_input: Path,
    tmp_path: Path,
    on_bad_rows: str,
) -> None:
    outcomes = score_local_and_on_dask(
        cluster, template_project, scoring_input, tmp_path, on_bad_rows
    )
    assert outcomes["dask"] == outcomes["local"] == outcomes["small"]
    assert outcomes["local"][0] == ("written" if on_bad_rows == "skip" else "refused")
    assert outcomes["local"][2]["rows"] == 7_080


@pytest.fixture(scope="module")
def scoring_folder(tmp_path_factory: pytest.TempPathFactory, scoring_input: Path) -> Path:
    """`scoring_input` cut into a folder of four files of uneven sizes (one empty, the bad rows
    in the first and the third), plus files a dataset folder ignores (`_SUCCESS`, `.tmp`)."""
    frame = pd.read_parquet(scoring_input)
    folder = tmp_path_factory.mktemp("scoring-folder") / "dataset"
    folder.mkdir()
    bounds = [0, 3_000, 3_000, 5_500, len(frame)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        frame.iloc[a:b].to_parquet(folder / f"part-{i}.parquet", row_group_size=900)
    (folder / "_SUCCESS").write_text("")
    frame.iloc[:10].to_parquet(folder / ".part-9.parquet.tmp.parquet")
    return folder


@pytest.mark.parametrize("on_bad_rows", ["skip", "fail"])
def test_a_folder_is_scored_as_one_dataset_the_same_on_dask(
    cluster: distributed.Client,
    template_project: Path,
    scoring_input: Path,
    scoring_folder: Path,
    tmp_path: Path,
    on_bad_rows: str,
) -> None:
    """A folder of Parquet files is one dataset in name order, scored into one file: the same
    rows as scoring the file it was cut from, the same bytes locally and on the cluster, and
    each bad row named by its file and its row there (as well as its row in the folder)."""
    import pyarrow.parquet as pq

    outcomes = score_local_and_on_dask(
        cluster, template_project, scoring_folder, tmp_path, on_bad_rows
    )
    assert outcomes["dask"] == outcomes["local"] == outcomes["small"]
    status, _, report = outcomes["local"]
    assert report["rows"] == 7_080
    assert report["skipped_rows"] == [6, 4_001]
    assert [(b["file"], b["file_row"]) for b in report["bad"]] == [
        ("part-0.parquet", 6),
        ("part-2.parquet", 1_001),
    ]
    if status == "refused":
        assert on_bad_rows == "fail"
        assert "row 4001 (part-2.parquet row 1001): " in outcomes["local"][1]
        return
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    single = tmp_path / "single.parquet"
    settings = BatchSettings(on_bad_rows, "reject", 1_000)
    batch.predict_file(
        load_bundle(template_project / "models/bundle"), scoring_input, single, settings
    )
    assert pq.read_table(tmp_path / "local.parquet").equals(pq.read_table(single))


def test_a_folder_input_refuses_what_is_not_one_dataset(
    template_project: Path, scoring_folder: Path, tmp_path: Path
) -> None:
    """No Parquet file, files of two schemas, or the output inside the input folder: a clear
    error naming the path, and nothing written."""
    import shutil

    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle

    bundle = load_bundle(template_project / "models/bundle")
    settings = BatchSettings("skip", "flag", 1_000)
    out = tmp_path / "out.parquet"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "data.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match=r"empty: no \.parquet file in the folder to score"):
        batch.predict_file(bundle, empty, out, settings)
    mixed = tmp_path / "mixed"
    shutil.copytree(scoring_folder, mixed)
    frame = pd.read_parquet(mixed / "part-3.parquet")
    frame["extra"] = 1
    frame.to_parquet(mixed / "part-3.parquet")
    with pytest.raises(
        DataError, match=r"part-3\.parquet: its columns differ from part-0\.parquet's: extra "
        r"\(int64 here, absent there\)"
    ):  # fmt: skip
        batch.predict_file(bundle, mixed, out, settings)
    inside = scoring_folder / "scores.parquet"
    with pytest.raises(DataError, match="would be written into the input folder"):
        batch.predict_file(bundle, scoring_folder, inside, settings)
    assert not out.exists() and not inside.exists()


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
    use_dask(
        project, f"  address: {cluster.scheduler.address}\n  partition_rows: 2000\n  min_rows: 0\n"
    )
    assert "compute:\n  kind: dask" in (project / "params.yaml").read_text()
    assert "up to date" in dvc("status", cwd=project).stdout
    ran = tasks_run(cluster)
    shutil.rmtree(project / "models/kept")  # nothing kept: every candidate is fitted again
    repro = dvc("repro", "--force", "--single-item", "train", cwd=project)
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
    at_threshold = spec(cluster, min_rows=60_000)  # the folder's rows: on the cluster
    on_dask = compute_drift_parquet(reference, folder, settings, compute=at_threshold)
    assert tasks_run(cluster) - ran >= 4  # one task per file
    assert on_dask.to_dict() == local.to_dict()
    below = ComputeSpec("dask", unreachable(), 0.5, None, 1000, 60_001)  # never contacted
    ran = tasks_run(cluster)
    assert (
        compute_drift_parquet(reference, folder, settings, compute=below).to_dict()
        == local.to_dict()
    )
    assert tasks_run(cluster) == ran
    assert local.by_column["x"].error_bound > 0  # x was sketched: its bound is certified, not 0


def test_monitoring_in_sketch_mode_on_dask_gives_the_local_report(
    cluster: distributed.Client, template_project: Path, scoring_input: Path, tmp_path: Path
) -> None:
    """`mlops monitor --input` (and the stage: both go through `engine.monitor`) in sketch
    mode with compute: dask judges every window on the cluster: the same report, verdicts and
    certified bounds included, as a local run."""
    from dataclasses import replace

    from pipeline import config
    from pipeline.deploy import batch
    from pipeline.deploy.bundle import load_bundle
    from pipeline.monitor.engine import assess_all, load_context
    from pipeline.monitor.manual import monitor_files
    from pipeline.monitor.windowing import windows_of
    from pipeline.params import SketchSettings
    from pipeline.traffic import Columns, read_traffic

    bundle = load_bundle(template_project / "models/bundle")
    scored = tmp_path / "scored.parquet"
    batch.predict_file(bundle, scoring_input, scored, BatchSettings("skip", "flag", 1_000))
    params = config.load_config(template_project, hyperparameters=False)
    settings = replace(
        params.monitor,
        windows=replace(params.monitor.windows, rows=2_000, min_rows=500),
        drift=replace(params.monitor.drift, mode="sketch", sketch=SketchSettings(64, 8, 500, 16)),
    )
    reports = {}
    rows = len(pd.read_parquet(scored, columns=[]))  # the windows' rows in all
    where = {
        "local": None,
        "dask": spec(cluster, min_rows=rows),  # as many rows as the windows: on the cluster
        "small": ComputeSpec("dask", unreachable(), 0.5, None, 1000, rows + 1),  # not contacted
    }
    for kind, compute_spec in where.items():
        out = tmp_path / kind
        ran = tasks_run(cluster)
        monitor_files(
            template_project, settings, params.dataset, [scored], Columns(), out,
            compute=compute_spec,
        )  # fmt: skip
        ran = tasks_run(cluster) - ran
        assert ran >= 4 if kind == "dask" else ran == 0  # 4 windows, 1 task each
        reports[kind] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert reports["dask"] == reports["local"] == reports["small"]
    assert {"report.json", "report.html", "metrics.json"} <= set(reports["local"])
    # the per-window results themselves (the report shows a part): bounds certified, equal
    ctx = load_context(template_project, settings, params.dataset)
    frame = read_traffic(scored, params.dataset, settings.task, Columns(), require_time=False)
    windows = windows_of("manual", [frame.frame], [scored.name], settings.windows)
    local = assess_all(windows, ctx)
    assert assess_all(windows, ctx, spec(cluster)) == local
    bounds = [
        column["error_bound"] or 0
        for result in local
        for column in (result["drift"] or {"columns": {}})["columns"].values()
    ]
    assert len(local) == 4 and max(bounds) > 0, "nothing sketched: the test proves nothing"


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


class KillFirstTask(distributed.WorkerPlugin):
    """Kills its worker process (SIGKILL, as the OOM killer would) when the first task of the
    cluster starts executing on it; `flag`, created atomically, makes that happen once: the
    worker the nanny restarts, and the other worker, carry on."""

    name = "kill-first-task"

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish != "executing":
            return
        try:
            os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_during_training_leaves_the_stage_output_exact(
    cluster: distributed.Client, project: Path, tmp_path: Path
) -> None:
    """A worker dies (SIGKILL) under the first cross-validation fit of a training stage on
    the cluster: Dask re-runs its fits on the workers left, and the stage writes the model and
    record a local run wrote, byte for byte; or it fails (exit non-zero) and its outputs are
    untouched. Never a model from a partial search. Bounded: the stage gets 180 s."""
    import subprocess
    import sys

    outputs = ("models/candidates/**/*",)
    before = digests(project, outputs)
    use_dask(project, f"  address: {cluster.scheduler.address}\n  min_rows: 0\n")
    flag = tmp_path / "killed"
    cluster.register_plugin(KillFirstTask(str(flag)))
    shutil.rmtree(project / "models/kept")  # nothing kept: the first candidate is fitted
    try:
        stage = subprocess.run(
            [sys.executable, "-m", "pipeline.develop.train"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        cluster.unregister_worker_plugin(KillFirstTask.name)
        cluster.wait_for_workers(2, timeout=60)  # the nanny brought it back, for the next test
    assert flag.exists(), "no worker was killed: the test proves nothing"
    assert "on a Dask cluster" in stage.stderr + stage.stdout
    # joblib scatters the training data to one worker: lost with it, the search cannot go on
    if stage.returncode != 0:
        assert stage.returncode == 1 and "Traceback" not in stage.stderr, stage.stderr
        assert "error: compute: the Dask cluster lost training work" in stage.stderr
    assert digests(project, outputs) == before  # the same bytes, or untouched on a failure


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
