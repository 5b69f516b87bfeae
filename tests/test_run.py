"""The stage runner: a stage run in a warm, forked interpreter behaves exactly like
`python -m MODULE` (streams, exit status, working directory, environment, signals)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.run import fills_cores
from tests.conftest import ROOT, env

PROBE = """
import gc, os, sys, time
from pathlib import Path

args = sys.argv[1:]
print("cwd", Path.cwd().name)
print("env", os.environ.get("PROBE_VALUE"))
print("ppid", os.getppid())
print("pid", os.getpid())
print("stdin", sys.stdin.readline().strip())
print("to stderr", file=sys.stderr)
umask = os.umask(0)
print("umask", oct(umask))
print("frozen", gc.get_freeze_count())
cycle = []
cycle.append(cycle)
del cycle
print("collected", gc.collect())
if args and args[0] == "sleep":
    print("sleeping", flush=True)
    time.sleep(60)
if args and args[0] == "fail":
    raise RuntimeError("boom")
if args and args[0] == "kill":
    os.kill(os.getpid(), int(args[1]))
raise SystemExit(int(args[0]) if args else 0)
"""


FOLDS = """
import json
import os

import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from pipeline.run import fold_workers


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    with fold_workers(-1):
        parents = joblib.Parallel(n_jobs=-1)(joblib.delayed(os.getppid)() for _ in range(4))
        search = GridSearchCV(
            LogisticRegression(max_iter=3000), {"C": [0.1, 1.0]}, cv=3, n_jobs=-1
        ).fit(X, y)
    print("stage", os.getpid())
    print("parents", json.dumps(sorted(set(parents))))
    print("scores", [round(float(s), 12) for s in search.cv_results_["mean_test_score"]])


if __name__ == "__main__":  # workers import this module too, as stages' workers do
    main()
"""


SLOW_FOLDS = """
import os
import sys
import time
from pathlib import Path

import joblib

from pipeline.run import fold_workers


def work(folder: str) -> None:
    Path(folder, str(os.getpid())).touch()
    time.sleep(60)


def main() -> None:
    print("pid", os.getpid(), flush=True)
    with fold_workers(-1):
        joblib.Parallel(n_jobs=-1)(joblib.delayed(work)(sys.argv[1]) for _ in range(2))
    Path(sys.argv[1], "finished").touch()


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A project with its own copy of the package (so its own runner) and a probe module: for
    a test that edits the code or sets its runner's idle time (a runner costs seconds of
    imports: the others share `shared_code`)."""
    return make_code(tmp_path)


@pytest.fixture(scope="module")
def shared_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One such project for the tests that leave its code alone: one runner serves them."""
    return make_code(tmp_path_factory.mktemp("shared"))


# A stage that has the runner fork another process (as the gate does for its smoke test).
FORKER = """
import json, os, sys, tempfile

from pipeline.run import _code_root, _key, _socket_path, run_forked

sleep = sys.argv[1:] == ["sleep"]
with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, \\
        tempfile.TemporaryFile() as err:
    inp.write(b"from the stage\\n")
    inp.seek(0)
    try:
        code = run_forked(
            "pipeline.probe_stage",
            ["sleep"] if sleep else ["5"],
            env={**os.environ, "PROBE_VALUE": "forked"},
            fds=[inp.fileno(), out.fileno(), err.fileno()],
            timeout=3 if sleep else 60,
        )
    except TimeoutError:
        code = "timeout"
    out.seek(0)
    err.seek(0)
    print(json.dumps({"code": code, "stage": os.getpid(), "runner": os.getppid(),
                      "out": out.read().decode(), "err": err.read().decode(),
                      "runner_socket": _socket_path(_key(_code_root())).exists()}))
"""


def make_code(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(
        ROOT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "pipeline" / "probe_stage.py").write_text(PROBE)
    (root / "pipeline" / "folds_stage.py").write_text(FOLDS)
    (root / "pipeline" / "slow_folds_stage.py").write_text(SLOW_FOLDS)
    (root / "pipeline" / "forker_stage.py").write_text(FORKER)
    (root / "work").mkdir()
    return root


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


def test_warm_run_matches_a_plain_run(shared_code: Path) -> None:
    for args in ((), ("3",)):
        warm, cold = call(shared_code, *args), call(shared_code, *args, runner=False)
        assert warm.returncode == cold.returncode == (int(args[0]) if args else 0)
        w, c = fields(warm.stdout), fields(cold.stdout)
        assert {k: w[k] for k in ("cwd", "env", "stdin", "umask")} == {
            k: c[k] for k in ("cwd", "env", "stdin", "umask")
        }
        assert w["cwd"] == "work" and w["env"] == "42" and w["stdin"] == "hello"
        assert warm.stderr == cold.stderr == "to stderr\n"


def test_a_stage_starts_with_the_runners_heap_frozen(shared_code: Path) -> None:
    """The runner's preloaded objects are out of the collector's reach in its stages (a full
    collection, which joblib's process backend makes before each pool, does not walk them);
    what a stage makes is still collected. A plain run has nothing frozen."""
    warm, cold = fields(call(shared_code).stdout), fields(call(shared_code, runner=False).stdout)
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


def test_a_crash_is_reported_like_the_interpreter_does(shared_code: Path) -> None:
    proc = call(shared_code, "fail")
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "Traceback" in proc.stderr


def test_a_signal_to_the_caller_stops_the_stage(shared_code: Path) -> None:
    environ = dict(env(), PROBE_VALUE="x", PYTHONPATH=str(shared_code))
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "pipeline.probe_stage", "sleep"],
        cwd=shared_code / "work",
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
def test_a_stage_dies_with_its_caller(shared_code: Path, kill: str) -> None:
    """kill -9 of the caller (and of `dvc`, its parent, or of the whole process group, as a
    CI cancel does) never leaves the stage running to write outputs for a stopped run."""
    command = CALLER if kill == "caller's parent" else STAGE
    proc, seen = start_sleeping(shared_code, command, start_new_session=True)
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
def test_fold_workers_die_with_the_stage(shared_code: Path, tmp_path: Path) -> None:
    marks = tmp_path / "workers"
    marks.mkdir()
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "pipeline.slow_folds_stage", str(marks)],
        cwd=shared_code / "work",
        env=dict(env(), PYTHONPATH=str(shared_code)),
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
    shared_code: Path,
) -> None:
    """`run_forked` (the gate's smoke test): a new process forked from the stage's own runner,
    with the environment and standard streams it is given, and its exit status back."""
    proc = call(shared_code, module="pipeline.forker_stage")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    forked = fields(got["out"])
    assert got["code"] == 5 and got["err"] == "to stderr\n"
    assert forked["env"] == "forked" and forked["stdin"] == "from the stage"
    assert forked["cwd"] == "work" and forked["umask"] == fields(call(shared_code).stdout)["umask"]
    assert int(forked["ppid"]) == got["runner"] != os.getpid()  # the runner forked both
    assert int(forked["pid"]) != got["stage"]


def test_run_forked_never_starts_a_runner(shared_code: Path) -> None:
    """Without a runner (MLOPS_RUNNER=0, or none for this code and environment) it returns
    None, and the caller starts the process its own way."""
    for extra in ({"MLOPS_RUNNER": "0"}, {"PYTHONHASHSEED": "7"}):  # the latter: no runner yet
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.forker_stage"],
            cwd=shared_code / "work",
            env=dict(env(), PYTHONPATH=str(shared_code), **extra),
            text=True,
            capture_output=True,
            timeout=120,
            check=True,
        )
        got = json.loads(proc.stdout)
        assert got["code"] is None
        assert extra.get("PYTHONHASHSEED") != "7" or not got["runner_socket"]


def test_a_forked_process_past_its_timeout_is_killed(shared_code: Path) -> None:
    proc = call(shared_code, "sleep", module="pipeline.forker_stage")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["code"] == "timeout"
    assert gone(int(fields(got["out"])["pid"])), "the forked process outlived its timeout"


def test_a_stage_dies_with_its_runner(shared_code: Path) -> None:
    """(Last of the shared runner's tests: it kills the runner.)"""
    proc, seen = start_sleeping(shared_code, STAGE)
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
    shared_code: Path, signum: int
) -> None:
    """A stage killed by SIGKILL (the OOM killer, a fault test) under the runner: its caller
    dies of the same signal, as a plain `python -m` stage would, so DVC reports it; it used
    to print a traceback (SIGKILL's handler cannot be set) and exit 1."""
    warm, cold = (
        call(shared_code, "kill", str(signum)),
        call(shared_code, "kill", str(signum), runner=False),
    )
    assert warm.returncode == cold.returncode == -signum
    assert "Traceback" not in warm.stderr
