"""kill -9 at every write: the stages under the warm runner, `mlops release`, `mlops maintain
--apply`, `mlops logs snapshot` and `mlops logs import`.

How: `tests/fault/sitecustomize.py` is put on the commands' PYTHONPATH. Each command is run
once with MLOPS_TEST_WRITE_LOG to list its write points (every file it fsyncs before putting it
in place, in order: its outputs, the journal's index and saved copies, each file of a bundle
being copied); then, in a fresh copy of the project for each point, it is killed there
(MLOPS_TEST_KILL_AT_FSYNC=<path>#<k>). Afterwards:

* no partial file is visible: every workspace file is byte-identical to what it was before the
  command or to what an uninterrupted run leaves ("fully updated"), and what a killed writer
  left beside its target (`.<name>.<random>.tmp`) is git-ignored;
* a release left half-done fails `mlops verify` until it is retried;
* a retry succeeds and leaves exactly what an uninterrupted run leaves: no temporaries, no
  journal.

The default suite kills each command at a point or two where issue 10 found a problem (the
release between two targets and during its bundle copy, a log window half-written, one stage's
output, `dvc repro` during a training stage; `maintain --apply` before its ledger's rename is in
tests/maintain/test_maintain.py, which has the project for it); the slow suite
(`make test-slow`) kills every command at every point. Stage writes are killed in the stage itself;
a `dvc repro` killed while its stage runs must take the stage with it (`pipeline.run`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pipeline.journal import pending
from tests.conftest import BIN, dvc, env, mlops, sh
from tests.fault import fault_env

pytestmark = pytest.mark.integration

SKIPPED = (".git", ".dvc/cache", ".dvc/tmp", ".mlops")
TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def run(args: Sequence[str], project: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=project,
        env=fault_env(**extra),
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )


def workspace(project: Path) -> dict[str, str]:
    """sha256 of every workspace file (not git's, DVC's cache or the journal), temporaries
    excluded: they are checked apart."""
    out = {}
    for path in project.rglob("*"):
        rel = path.relative_to(project).as_posix()
        if any(rel == s or rel.startswith(f"{s}/") for s in SKIPPED) or not path.is_file():
            continue
        if any(TEMPORARY.match(part) for part in path.relative_to(project).parts):
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temporaries(project: Path) -> list[str]:
    return sorted(
        p.relative_to(project).as_posix()
        for p in project.rglob(".*.tmp")
        if TEMPORARY.match(p.name) and not p.relative_to(project).as_posix().startswith(SKIPPED)
    )


def visible(project: Path, paths: list[str]) -> list[str]:
    """The paths `git add -A` would pick up."""
    if not paths:
        return []
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"],
        cwd=project,
        input="\n".join(paths) + "\n",
        text=True,
        capture_output=True,
        check=False,
    )
    return [line.split("\t", 1)[1] for line in proc.stdout.splitlines() if line.startswith("::")]


@dataclass
class Command:
    """A command of the matrix: how to run it, and what it leaves when it is not killed."""

    args: list[str]
    before: dict[str, str]
    after: dict[str, str]
    points: list[str]  # kill specs, in write order


def write_points(log: Path, program: str) -> list[str]:
    """`<path>#<k>` for every write of `program` in the log, in order."""
    seen: dict[str, int] = {}
    points = []
    for line in log.read_text().splitlines():
        who, _, name = line.partition("\t")
        if who != program:
            continue
        seen[name] = seen.get(name, 0) + 1
        points.append(f"{name}#{seen[name]}")
    return points


def reference(source: Path, scratch: Path, args: list[str], program: str) -> Command:
    """Run `args` once in a copy of `source`, uninterrupted, listing its write points."""
    copy = scratch / "reference"
    shutil.copytree(source, copy, symlinks=True)
    log = scratch / "writes.log"
    proc = run(args, copy, MLOPS_TEST_WRITE_LOG=str(log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Command(args, workspace(source), workspace(copy), write_points(log, program))


def killed(source: Path, dest: Path, command: Command, point: str) -> Path:
    """A copy of `source` in which `command` was killed at `point`."""
    shutil.copytree(source, dest, symlinks=True)
    proc = run(command.args, dest, MLOPS_TEST_KILL_AT_FSYNC=point)
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {proc.stderr}"
    return dest


def assert_whole_files(project: Path, command: Command, point: str) -> None:
    """Every workspace file is as before or fully updated; temporaries are git-ignored."""
    now = workspace(project)
    mixed = [
        p
        for p in sorted({*now, *command.before, *command.after})
        if now.get(p) not in (command.before.get(p), command.after.get(p))
    ]
    assert not mixed, f"killed at {point}: partial or foreign files {mixed}"
    assert not visible(project, temporaries(project)), f"killed at {point}: temporaries visible"


def assert_retry_completes(project: Path, command: Command, point: str) -> None:
    proc = run(command.args, project)
    assert proc.returncode == 0, f"retry after a kill at {point}: {proc.stdout}{proc.stderr}"
    assert workspace(project) == command.after, f"retry after a kill at {point} differs"
    assert temporaries(project) == [] and pending(project) is None


def chosen(points: list[str], wanted: Sequence[str]) -> list[str]:
    """The points named in `wanted` (a path, or a path's first write), in write order; every
    one must exist, so a renamed file cannot silently shrink the default suite."""
    out = []
    for want in wanted:
        spec = want if "#" in want else f"{want}#1"
        match = [p for p in points if p == spec or (p.endswith(spec) and "/" not in want)]
        assert match, f"no write point {want!r} among {points}"
        out.append(match[0])
    return out


# ------------------------------------------------------------------------------------ release
@pytest.fixture(scope="module")
def release_cmd(
    template_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Command]:
    scratch = tmp_path_factory.mktemp("release")
    return template_project, reference(template_project, scratch, ["mlops", "release"], "mlops")


def check_release_kill(source: Path, command: Command, point: str, dest: Path) -> None:
    project = killed(source, dest, command, point)
    assert_whole_files(project, command, point)
    left = pending(project)
    if left is None:  # nothing changed yet, or everything: never a mix
        assert workspace(project) in (command.before, command.after), point
    else:
        verify = subprocess.run(
            [str(BIN / "mlops"), "verify"], cwd=project, env=env(), text=True, capture_output=True
        )
        assert verify.returncode == 1, f"verify passed a release killed at {point}"
        assert "an interrupted `mlops release` left its changes half-done" in verify.stdout
        if point == "deploy/batch.json#1":  # between the targets: verify names the mix
            assert (
                "mixed state: targets released together are at different releases: local (r0001-"
                in verify.stdout
                and "batch (no release) not yet" in verify.stdout
            ), verify.stdout
    assert_retry_completes(project, command, point)


RELEASE_POINTS = (
    "deploy/batch.json",  # between the two targets' records (issue 10: local r0002, batch r0001)
    "model.skops",  # during the bundle copy (issue 10: bundles/.<id>.*.tmp/ left behind)
)  # the slow suite kills it at every other write too


@pytest.mark.parametrize("point", RELEASE_POINTS)
def test_release_killed(release_cmd: tuple[Path, Command], point: str, tmp_path: Path) -> None:
    source, command = release_cmd
    (spec,) = chosen(command.points, [point])
    check_release_kill(source, command, spec, tmp_path / "p")


@pytest.mark.slow
def test_release_killed_at_every_write(release_cmd: tuple[Path, Command], tmp_path: Path) -> None:
    source, command = release_cmd
    assert len(command.points) >= 10, command.points
    for i, point in enumerate(command.points):
        check_release_kill(source, command, point, tmp_path / f"p{i}")


# ---------------------------------------------------------------------------- maintain --apply
@pytest.fixture(scope="module")
def retrain_project(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A released project whose `maintain` stage decided to retrain on two labelled windows
    (as in tests/maintain), committed."""
    from tests.maintain.test_maintain import local_conf, production_window, release

    project = tmp_path_factory.mktemp("retrain") / "p"
    shutil.copytree(template_project, project, symlinks=True)
    (project / ".ready").unlink(missing_ok=True)
    local_conf(project, "maintain:\n  policies:\n    new_labels:\n      min_rows: 150\n")
    rel = release(project)
    for i in range(2):
        production_window(project, rel, start=f"2026-03-0{i + 1}T00:00:00+00:00", seed=i)
    dvc("repro", cwd=project)
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["action"] == "retrain", decision["reason"]
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "windows"], project)
    return project


@pytest.fixture(scope="module")
def apply_cmd(
    retrain_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Command]:
    scratch = tmp_path_factory.mktemp("apply")
    args = ["mlops", "maintain", "--apply", "--no-repro"]
    return retrain_project, reference(retrain_project, scratch, args, "mlops")


def check_apply_kill(source: Path, command: Command, point: str, dest: Path) -> None:
    project = killed(source, dest, command, point)
    assert_whole_files(project, command, point)
    if pending(project) is None:
        assert workspace(project) in (command.before, command.after), point
    assert_retry_completes(project, command, point)
    ledger = json.loads((project / "maintain/ledger.json").read_text())["entries"]
    assert [e["action"] for e in ledger] == ["retrain"] and ledger[0]["rows"] == 200


@pytest.mark.slow  # as tests/maintain/test_maintain.py::test_retrain_applies_once_... (slow too)
@pytest.mark.parametrize("point", ["maintain/ledger.json", "data/feedback"])
def test_maintain_apply_killed(apply_cmd: tuple[Path, Command], point: str, tmp_path: Path) -> None:
    """Killed just before the ledger's rename (issue 10: feedback written, the ledger not, every
    retry refused with "the data has no rows"), or while writing the feedback rows."""
    source, command = apply_cmd
    if point == "data/feedback":
        spec = next(p for p in command.points if p.startswith("data/feedback/"))
    else:
        (spec,) = chosen(command.points, [point])
    check_apply_kill(source, command, spec, tmp_path / "p")


@pytest.mark.slow
def test_maintain_apply_killed_at_every_write(
    apply_cmd: tuple[Path, Command], tmp_path: Path
) -> None:
    source, command = apply_cmd
    assert len(command.points) >= 5, command.points
    for i, point in enumerate(command.points):
        check_apply_kill(source, command, point, tmp_path / f"p{i}")


# ---------------------------------------------------------------------- logs snapshot / import
def prediction_log(project: Path, records: int) -> None:
    """A service's prediction log and feedback for target `local`, as `mlops serve` writes
    them (one record a second, every third one labelled)."""
    from pipeline.config import load_params
    from pipeline.settings import DatasetSpec

    dataset = DatasetSpec.from_params(load_params(project, hyperparameters=False)["dataset"])
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    names = [c.name for c in dataset.features]
    log_dir = project / "logs/local"
    log_dir.mkdir(parents=True)
    start = pd.Timestamp("2026-06-01T00:00:00Z")
    lines, feedback = [], []
    for i in range(records):
        row = pool.iloc[i % len(pool)]
        rid = f"req-{i:04d}"
        when = (start + pd.Timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        entry = {
            "request_id": rid,
            "time": when,
            "release": "r0001-0123456789abcdef",
            "bundle": "0123456789abcdef",
            "inputs": {n: float(row[n]) for n in names},
            "prediction": str(row[dataset.target]),
            "flags": [],
        }
        lines.append(json.dumps(entry))
        if i % 3 == 0:
            feedback.append(
                json.dumps({"request_id": rid, "time": when, "label": entry["prediction"]})
            )
    (log_dir / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    (log_dir / "feedback.jsonl").write_text("\n".join(feedback) + "\n")


@pytest.fixture(scope="module")
def logs_project(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("logs") / "p"
    shutil.copytree(template_project, project, symlinks=True)
    prediction_log(project, 35)
    traffic = pd.read_parquet(project / "data/prepared/pool.parquet").head(40)
    traffic = traffic.rename(columns={"target": "actual"})
    traffic["event_time"] = [f"2026-07-01T00:{i:02d}:00Z" for i in range(len(traffic))]
    traffic["pred"] = traffic["actual"].astype(str)
    for i, part in enumerate((traffic.iloc[:20], traffic.iloc[20:])):
        part.to_csv(project / f"traffic-{i}.csv", index=False)
    return project


LOG_COMMANDS = {
    "snapshot": ["mlops", "logs", "snapshot", "--window-rows", "10"],
    "import": [
        "mlops", "logs", "import", "traffic-0.csv", "traffic-1.csv", "--time-column",
        "event_time", "--prediction-column", "pred", "--label-column", "actual",
    ],
}  # fmt: skip


def logs_command(logs_project: Path, name: str, scratch: Path) -> Command:
    command = reference(logs_project, scratch, LOG_COMMANDS[name], "mlops")
    windows = [p for p in command.points if p.startswith("data/production/")]
    assert len(windows) == (3 if name == "snapshot" else 2), command.points
    return command


def check_logs_kill(source: Path, command: Command, point: str, dest: Path) -> None:
    project = killed(source, dest, command, point)
    assert_whole_files(project, command, point)
    assert_retry_completes(project, command, point)


@pytest.mark.parametrize("name", ["snapshot", pytest.param("import", marks=pytest.mark.slow)])
def test_logs_killed_while_writing_a_window(logs_project: Path, name: str, tmp_path: Path) -> None:
    """Killed while writing its second window (the first one in place): a retry writes the
    rest, whatever the killed writer left behind (issue 10: its temporary tripped the retry)."""
    command = logs_command(logs_project, name, tmp_path)
    second = [p for p in command.points if p.startswith("data/production/")][1]
    check_logs_kill(logs_project, command, second, tmp_path / "p")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["snapshot", "import"])
def test_logs_killed_at_every_write(logs_project: Path, name: str, tmp_path: Path) -> None:
    """Each window is written whole; a retry writes the rest, whatever was left behind."""
    command = logs_command(logs_project, name, tmp_path)
    for i, point in enumerate(command.points):
        check_logs_kill(logs_project, command, point, tmp_path / f"p{i}")


# ------------------------------------------------------------------------------------- stages
def stage_of(project: Path) -> Callable[[str], str]:
    """The DVC stage that writes a path (its outputs contain it)."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        outs = [
            (Path(out.fs_path).relative_to(project).as_posix(), stage.name)
            for stage in repo.index.stages
            for out in stage.outs
        ]

    def find(path: str) -> str:
        for out, stage in outs:
            if path == out or path.startswith(f"{out}/"):
                return stage
        raise AssertionError(f"{path} is no stage's output")

    return find


def check_stage_kill(
    source: Path, stage: str, point: str, dest: Path, before: dict[str, str]
) -> None:
    shutil.copytree(source, dest, symlinks=True)
    proc = run(
        ["dvc", "repro", "--force", "--single-item", stage], dest, MLOPS_TEST_KILL_AT_FSYNC=point
    )
    # -9 when DVC's shell ($SHELL, dash or bash) execs the stage in its place, 137 when it waits
    assert proc.returncode != 0 and re.search(r"exited with (-9|137)\b", proc.stderr), (
        f"{stage} was not killed at {point}: {proc.stderr}"
    )
    now = workspace(dest)
    changed = [p for p in now if now[p] != before.get(p)]
    assert not changed, f"{stage} killed at {point} left partial or new files {changed}"
    assert not visible(dest, temporaries(dest)), f"{stage} killed at {point}: temporaries visible"
    proc = run(["dvc", "repro"], dest)
    assert proc.returncode == 0, f"retry after {stage} was killed at {point}: {proc.stderr}"
    assert workspace(dest) == before, f"retry after {stage} was killed at {point} differs"
    # DVC may restore the outputs from its run cache without running the stage, whose next
    # write would sweep the killed writer's temporary: until then it stays, git-ignored
    assert not visible(dest, temporaries(dest))


def test_a_stage_killed_at_a_write(project: Path, tmp_path: Path) -> None:
    """`prepare` killed as its first output is about to be put in place: nothing partial is
    left, and `dvc repro` then restores the workspace byte for byte (stages are pure)."""
    check_stage_kill(
        project, "prepare", "data/prepared/train.parquet", tmp_path / "p", workspace(project)
    )


@pytest.mark.slow  # two training runs; tests/test_kept_folders.py kills a kept write by default
def test_train_killed_while_keeping_a_fit(project: Path, tmp_path: Path) -> None:
    """`train` with nothing kept, killed as it puts its first fit in the kept store (the
    folder written, not yet renamed into place): no kept fit or output is left half-written
    or visible, and `dvc repro` then fits again and restores the workspace byte for byte."""
    before = workspace(project)
    shutil.rmtree(project / "models/kept")
    check_stage_kill(project, "train", "model.skops", tmp_path / "p", before)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 38 kill points, each a copy, a killed stage and a `dvc repro`
def test_every_stage_killed_at_every_write(template_project: Path, tmp_path: Path) -> None:
    """Stages are deterministic: after the kill and a plain `dvc repro`, the workspace is the
    template's, byte for byte (committed files byte-identical)."""
    source = tmp_path / "source"
    shutil.copytree(template_project, source, symlinks=True)
    before = workspace(source)
    log = tmp_path / "writes.log"
    proc = run(["dvc", "repro", "--force"], source, MLOPS_TEST_WRITE_LOG=str(log))
    assert proc.returncode == 0, proc.stderr
    assert workspace(source) == before  # deterministic: the reference is the template itself
    find = stage_of(source)
    points: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        program, _, name = line.partition("\t")
        if program in ("dvc", "mlops"):  # DVC's own files: a stage is named by its script
            continue
        counts[name] = counts.get(name, 0) + 1
        points.setdefault(find(name), []).append(f"{name}#{counts[name]}")
    assert len(points) >= 10, sorted(points)
    for stage, specs in points.items():
        for i, point in enumerate(specs):
            dest = tmp_path / f"{stage.replace('@', '-')}-{i}"
            check_stage_kill(source, stage, point, dest, before)
            shutil.rmtree(dest)


@dataclass
class Paused:
    proc: subprocess.Popen[str]
    stage_pid: int
    before: dict[str, str]  # the workspace before `dvc repro` started


@pytest.fixture
def paused_training(project: Path, tmp_path: Path) -> Iterator[Paused]:
    """`dvc repro` of a training stage, paused in the stage just before its model file is put
    in place (all its work done), started in its own process group as CI runs jobs."""
    pause = tmp_path / "pause"
    pause.mkdir()
    before = workspace(project)
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "--force", "--single-item", "train"],
        cwd=project,
        env=fault_env(
            MLOPS_TEST_PAUSE_AT_FSYNC="models/candidates/random_forest/model.skops",
            MLOPS_TEST_PAUSE_DIR=str(pause),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (pause / "paused").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the stage never paused"
        time.sleep(0.1)
    stage = int((pause / "paused").read_text())
    try:
        yield Paused(proc, stage, before)
    finally:
        (pause / "go").touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# kill -9 of a stage's caller alone: tests/test_run.py (fast, without dvc)
@pytest.mark.parametrize("kill", [pytest.param("dvc", marks=pytest.mark.slow), "its process group"])
def test_killing_dvc_repro_stops_its_stage(
    project: Path, paused_training: Paused, kill: str, tmp_path: Path
) -> None:
    """Issue 10: a stage under the warm runner outlived a killed `dvc repro` and wrote
    models/candidates/random_forest/ a minute later. Now it dies with it, writes nothing, and
    the next `dvc repro` restores the stage's outputs."""
    dvc_pid = paused_training.proc.pid
    if kill == "dvc":
        os.kill(dvc_pid, signal.SIGKILL)
    else:
        os.killpg(dvc_pid, signal.SIGKILL)
    paused_training.proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while alive(paused_training.stage_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(paused_training.stage_pid), "the stage outlived `dvc repro`"
    # Released only once the stage is dead: the runner kills a stage when it sees its caller
    # gone, a moment after `dvc repro` dies, and a stage released within that moment finished
    # its write first (once in a loaded run). Released earlier, a stage that was never killed
    # would also write and exit, and pass for a killed one. Anything still paused writes now.
    (tmp_path / "pause" / "go").touch()
    time.sleep(1)
    model = project / "models/candidates/random_forest/model.skops"
    assert not model.exists(), "a stage of a killed `dvc repro` wrote its output"
    assert not visible(project, temporaries(project))
    mlops("compose", "--check", cwd=project)
    proc = run(["dvc", "repro"], project)
    assert proc.returncode == 0, proc.stderr
    assert workspace(project) == paused_training.before and model.exists()
