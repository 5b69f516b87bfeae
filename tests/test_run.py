"""The stage runner: a stage run in a warm, forked interpreter behaves exactly like
`python -m MODULE` (streams, exit status, working directory, environment, signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.run import fills_cores
from tests import probe_code as probes
from tests.conftest import env


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """This test's own copy of the package (so its own runner): for a test that edits the code,
    sets its runner's idle time or kills its runner (the others share `probe_code`)."""
    return probes.make_code(tmp_path / "proj")


probe_code = probes.probe_code  # one copy for the session, one runner for its tests


def call(
    root: Path,
    *args: str,
    runner: bool = True,
    stdin: str = "hello\n",
    extra: dict[str, str] | None = None,
    module: str = "pipeline.probe_stage",
) -> subprocess.CompletedProcess[str]:
    environ = dict(
        env(),
        PROBE_VALUE="42",
        MLOPS_RUNNER="1" if runner else "0",
        PYTHONPATH=str(root),
        **(extra or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "pipeline.run", module, *args],
        cwd=root / "work",
        env=environ,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )


def fields(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_warm_run_matches_a_plain_run(probe_code: Path) -> None:
    for args in ((), ("3",)):
        warm, cold = call(probe_code, *args), call(probe_code, *args, runner=False)
        assert warm.returncode == cold.returncode == (int(args[0]) if args else 0)
        w, c = fields(warm.stdout), fields(cold.stdout)
        assert {k: w[k] for k in ("cwd", "env", "stdin", "umask")} == {
            k: c[k] for k in ("cwd", "env", "stdin", "umask")
        }
        assert w["cwd"] == "work" and w["env"] == "42" and w["stdin"] == "hello"
        assert warm.stderr == cold.stderr == "to stderr\n"


def test_a_stage_starts_with_the_runners_heap_frozen(probe_code: Path) -> None:
    """The runner's preloaded objects are out of the collector's reach in its stages (a full
    collection, which joblib's process backend makes before each pool, does not walk them);
    what a stage makes is still collected. A plain run has nothing frozen."""
    warm, cold = fields(call(probe_code).stdout), fields(call(probe_code, runner=False).stdout)
    assert int(cold["frozen"]) == 0
    assert int(warm["frozen"]) > 100_000  # pandas, scikit-learn, scipy, skops, ...
    assert int(warm["collected"]) >= 1 and int(cold["collected"]) >= 1


def test_one_runner_serves_many_stages_until_the_code_changes(code: Path) -> None:
    first, second = fields(call(code).stdout), fields(call(code).stdout)
    assert first["ppid"] == second["ppid"]  # both forked by the same runner
    assert int(first["ppid"]) != os.getpid()
    probe = code / "pipeline" / "probe_stage.py"
    probe.write_text(probe.read_text() + "\n# edited\n")
    assert fields(call(code).stdout)["ppid"] != first["ppid"]  # edited code: a fresh runner


@pytest.mark.slow  # a speed mechanism; test_warm_run_matches_a_plain_run checks results
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: joblib runs folds inline")
def test_parallel_fits_fork_from_the_runners_fork_server(code: Path) -> None:
    def folds(runner: bool) -> dict[str, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.run", "pipeline.folds_stage"],
            cwd=code / "work",
            env=dict(env(), MLOPS_RUNNER="1" if runner else "0", PYTHONPATH=str(code)),
            text=True,
            capture_output=True,
            timeout=300,
            check=True,
        )
        return fields(proc.stdout)

    warm = folds(runner=True)
    stage, parents = int(warm["stage"]), json.loads(warm["parents"])
    # warm: the workers are children of the fork server; cold: joblib's own, the stage's.
    # Read the fork server's command line before the cold run: on a loaded machine that run
    # can outlast the idle runner (and its fork server) it would otherwise race with.
    assert len(parents) == 1 and parents[0] != stage
    assert Path(f"/proc/{parents[0]}/cmdline").read_bytes().find(b"forkserver") >= 0
    cold = folds(runner=False)
    assert warm["scores"] == cold["scores"]
    assert json.loads(cold["parents"]) == [int(cold["stage"])]


@pytest.mark.parametrize(
    ("n_jobs", "cores", "fills"),
    [(None, 2, False), (1, 2, False), (2, 2, True), (-1, 2, True), (-1, 8, True),
     (2, 8, False), (4, 8, False), (5, 8, True), (-2, 8, True), (-1, 1, False)],
)  # fmt: skip
def test_fork_server_workers_only_where_joblibs_would_be_single_threaded(
    n_jobs: int | None, cores: int, fills: bool
) -> None:
    assert fills_cores(n_jobs, cores) is fills


def test_a_crash_is_reported_like_the_interpreter_does(probe_code: Path) -> None:
    proc = call(probe_code, "fail")
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "Traceback" in proc.stderr


def test_a_signal_to_the_caller_stops_the_stage(probe_code: Path) -> None:
    environ = dict(env(), PROBE_VALUE="x", PYTHONPATH=str(probe_code))
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "pipeline.probe_stage", "sleep"],
        cwd=probe_code / "work",
        env=environ,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        ppid = None
        for line in proc.stdout:
            if line.startswith("ppid"):
                ppid = int(line.split()[1])
            if line.startswith("sleeping"):
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    assert ppid is not None and ppid != proc.pid  # it ran in the runner, and was stopped


def gone(pid: int, within: float = 15.0) -> bool:
    """Whether `pid` has exited (a zombie counts) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def start_sleeping(code: Path, command: list[str], **popen: object) -> tuple[Any, dict[str, str]]:
    """Start `command` (which runs the probe's `sleep`) and read until the stage sleeps."""
    proc = subprocess.Popen(
        command,
        cwd=code / "work",
        env=dict(env(), PROBE_VALUE="x", PYTHONPATH=str(code)),
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,  # type: ignore[call-overload]
    )
    seen: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, _, value = line.strip().partition(" ")
        seen[key] = value
        if key == "sleeping":
            break
    return proc, seen


STAGE = [sys.executable, "-m", "pipeline.run", "pipeline.probe_stage", "sleep"]
# a stand-in for `dvc repro`: a parent that runs the stage's command and waits for it
CALLER = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *STAGE]


@pytest.mark.parametrize("kill", ["caller", "caller's process group", "caller's parent"])
def test_a_stage_dies_with_its_caller(probe_code: Path, kill: str) -> None:
    """kill -9 of the caller (and of `dvc`, its parent, or of the whole process group, as a
    CI cancel does) never leaves the stage running to write outputs for a stopped run."""
    command = CALLER if kill == "caller's parent" else STAGE
    proc, seen = start_sleeping(probe_code, command, start_new_session=True)
    with proc:
        stage = int(seen["pid"])
        assert int(seen["ppid"]) != proc.pid  # it runs in the runner
        if kill == "caller's process group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert gone(stage), "the stage outlived its caller"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: joblib runs folds inline")
def test_fold_workers_die_with_the_stage(probe_code: Path, tmp_path: Path) -> None:
    marks = tmp_path / "workers"
    marks.mkdir()
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "pipeline.slow_folds_stage", str(marks)],
        cwd=probe_code / "work",
        env=dict(env(), PYTHONPATH=str(probe_code)),
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        stage = int(proc.stdout.readline().split()[1])
        deadline = time.monotonic() + 60
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(p.name) for p in marks.iterdir()]
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert all(gone(pid) for pid in [stage, *workers]), "a stage or fold worker outlived it"
    assert not (marks / "finished").exists()


def test_a_stage_has_its_runner_fork_a_process_with_its_environment_and_streams(
    probe_code: Path,
) -> None:
    """`run_forked` (the gate's smoke test): a new process forked from the stage's own runner,
    with the environment and standard streams it is given, and its exit status back."""
    proc = call(probe_code, module="pipeline.forker_stage")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    forked = fields(got["out"])
    assert got["code"] == 5 and got["err"] == "to stderr\n"
    assert forked["env"] == "forked" and forked["stdin"] == "from the stage"
    assert forked["cwd"] == "work" and forked["umask"] == fields(call(probe_code).stdout)["umask"]
    assert int(forked["ppid"]) == got["runner"] != os.getpid()  # the runner forked both
    assert int(forked["pid"]) != got["stage"]


def test_run_forked_never_starts_a_runner(probe_code: Path) -> None:
    """Without a runner (MLOPS_RUNNER=0, or none for this code and environment) it returns
    None, and the caller starts the process its own way."""
    for extra in ({"MLOPS_RUNNER": "0"}, {"PYTHONHASHSEED": "7"}):  # the latter: no runner yet
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.forker_stage"],
            cwd=probe_code / "work",
            env=dict(env(), PYTHONPATH=str(probe_code), **extra),
            text=True,
            capture_output=True,
            timeout=120,
            check=True,
        )
        got = json.loads(proc.stdout)
        assert got["code"] is None
        assert extra.get("PYTHONHASHSEED") != "7" or not got["runner_socket"]


def test_a_forked_process_past_its_timeout_is_killed(probe_code: Path) -> None:
    proc = call(probe_code, "sleep", module="pipeline.forker_stage")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["code"] == "timeout"
    assert gone(int(fields(got["out"])["pid"])), "the forked process outlived its timeout"


def test_a_stage_dies_with_its_runner(code: Path) -> None:
    """(On a runner of its own: it kills it.)"""
    proc, seen = start_sleeping(code, STAGE)
    with proc:
        os.kill(int(seen["ppid"]), signal.SIGKILL)
        assert gone(int(seen["pid"])), "the stage outlived its runner"
        assert proc.wait(timeout=30) == 1
        assert proc.stderr is not None
        assert "the stage runner went away" in proc.stderr.read()


def test_only_pipeline_modules() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.run", "os"],
        env=env(),
        text=True,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2 and "only pipeline stage modules" in proc.stderr


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


@pytest.mark.long(10)  # seconds on CI: handed out early
def test_an_idle_runner_exits_on_its_own_with_its_fork_server(code: Path) -> None:
    """Issue 10: nothing of the runner lingers once `dvc repro` is done: after the declared
    idle time (MLOPS_RUNNER_IDLE_SECONDS), it and its fork server exit, its socket is gone."""
    proc = call(code, extra={"MLOPS_RUNNER_IDLE_SECONDS": "1"})
    assert proc.returncode == 0, proc.stderr
    runner = int(fields(proc.stdout)["ppid"])
    assert runner != os.getpid()
    helpers = children(runner)  # the fork server (and its resource tracker)
    sockets = [p for p in Path(f"/proc/{runner}/fd").iterdir() if "socket" in os.readlink(p)]
    assert helpers and sockets
    assert gone(runner, within=10), "the runner did not exit when idle"
    # the fork server notices its runner's exit once it has imported its preload modules,
    # which takes tens of seconds on a loaded machine
    assert all(gone(pid, within=90) for pid in helpers), "the fork server outlived its runner"


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_stage_killed_by_a_signal_kills_its_caller_the_same_way(
    probe_code: Path, signum: int
) -> None:
    """A stage killed by SIGKILL (the OOM killer, a fault test) under the runner: its caller
    dies of the same signal, as a plain `python -m` stage would, so DVC reports it; it used
    to print a traceback (SIGKILL's handler cannot be set) and exit 1."""
    warm, cold = (
        call(probe_code, "kill", str(signum)),
        call(probe_code, "kill", str(signum), runner=False),
    )
    assert warm.returncode == cold.returncode == -signum
    assert "Traceback" not in warm.stderr
