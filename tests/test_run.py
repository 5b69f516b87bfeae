"""The stage runner: a stage run in a warm, forked interpreter behaves exactly like
`python -m MODULE` (streams, exit status, working directory, environment, signals)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.run import fills_cores
from tests.conftest import ROOT, env

PROBE = """
import os, sys, time
from pathlib import Path

args = sys.argv[1:]
print("cwd", Path.cwd().name)
print("env", os.environ.get("PROBE_VALUE"))
print("ppid", os.getppid())
print("stdin", sys.stdin.readline().strip())
print("to stderr", file=sys.stderr)
umask = os.umask(0)
print("umask", oct(umask))
if args and args[0] == "sleep":
    print("sleeping", flush=True)
    time.sleep(60)
if args and args[0] == "fail":
    raise RuntimeError("boom")
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


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A project with its own copy of the package (so its own runner) and a probe module."""
    root = tmp_path / "proj"
    shutil.copytree(
        ROOT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "pipeline" / "probe_stage.py").write_text(PROBE)
    (root / "pipeline" / "folds_stage.py").write_text(FOLDS)
    (root / "work").mkdir()
    return root


def call(
    root: Path,
    *args: str,
    runner: bool = True,
    stdin: str = "hello\n",
    extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    environ = dict(
        env(),
        PROBE_VALUE="42",
        MLOPS_RUNNER="1" if runner else "0",
        PYTHONPATH=str(root),
        **(extra or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "pipeline.run", "pipeline.probe_stage", *args],
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


def test_warm_run_matches_a_plain_run(code: Path) -> None:
    for args in ((), ("3",)):
        warm, cold = call(code, *args), call(code, *args, runner=False)
        assert warm.returncode == cold.returncode == (int(args[0]) if args else 0)
        w, c = fields(warm.stdout), fields(cold.stdout)
        assert {k: w[k] for k in ("cwd", "env", "stdin", "umask")} == {
            k: c[k] for k in ("cwd", "env", "stdin", "umask")
        }
        assert w["cwd"] == "work" and w["env"] == "42" and w["stdin"] == "hello"
        assert warm.stderr == cold.stderr == "to stderr\n"


def test_one_runner_serves_many_stages_until_the_code_changes(code: Path) -> None:
    first, second = fields(call(code).stdout), fields(call(code).stdout)
    assert first["ppid"] == second["ppid"]  # both forked by the same runner
    assert int(first["ppid"]) != os.getpid()
    probe = code / "pipeline" / "probe_stage.py"
    probe.write_text(probe.read_text() + "\n# edited\n")
    assert fields(call(code).stdout)["ppid"] != first["ppid"]  # edited code: a fresh runner


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: joblib runs folds inline")
def test_parallel_fits_fork_from_the_runners_fork_server(code: Path) -> None:
    def folds(runner: bool) -> dict[str, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.run", "pipeline.folds_stage"],
            cwd=code / "work",
            env=dict(env(), MLOPS_RUNNER="1" if runner else "0", PYTHONPATH=str(code)),
            text=True,
            capture_output=True,
            timeout=120,
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


def test_a_crash_is_reported_like_the_interpreter_does(code: Path) -> None:
    proc = call(code, "fail")
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr and "Traceback" in proc.stderr


def test_a_signal_to_the_caller_stops_the_stage(code: Path) -> None:
    environ = dict(env(), PROBE_VALUE="x", PYTHONPATH=str(code))
    with subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "pipeline.probe_stage", "sleep"],
        cwd=code / "work",
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
