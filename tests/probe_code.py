"""Probe stage modules in a copy of the `pipeline` package, for the tests of the stage runner
(tests/test_run.py) and of the gate's smoke test forked from it (tests/deploy/test_smoke.py).

A stage module must live in the `pipeline` package (`pipeline.run` runs nothing else), so each
copy of the package is code of its own, with a runner of its own (keyed by the code's location:
pipeline/run.py), which costs seconds of imports, and its fork server's. `probe_code` is one copy
with every probe, built once per session and shared by every test that leaves its code and its
runner alone, on both xdist workers: one runner serves them all, as it serves the concurrent
stages of `dvc repro`. A test that edits the code, sets the runner's idle time or kills the
runner takes a copy of its own (`make_code`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_once

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


# A stage that runs the smoke test on a bundle twice (with the bundle's own predictions as the
# reference, then with a reference given on stdin, as for a rollback to an older split), and
# says whether each ran forked from the runner (0) or in a new interpreter (None).
SMOKE_PROBE = """
import json, sys
from pathlib import Path

import pandas as pd

from pipeline import run
from pipeline.deploy import scoring, smoke

forked = []
real = run.run_forked


def spy(*args, **kwargs):
    forked.append(real(*args, **kwargs))
    return forked[-1]


run.run_forked = spy
bundle, test = Path(sys.argv[1]), Path(sys.argv[2])
own = smoke.run(bundle, test, rows=50, tolerance=1e-12, threads=1)
offline = pd.read_parquet(bundle / "predictions.parquet").set_index(scoring.ROW)
rows = offline.loc[smoke.held_out_rows(len(pd.read_parquet(test)), 50)]
proba = [c for c in offline.columns if c.startswith("proba_")]
reference = {"prediction": rows[scoring.PREDICTION].tolist(), "proba": rows[proba].values.tolist()}
given = smoke.run(bundle, test, rows=50, tolerance=1e-12, threads=1, reference=reference)
print(json.dumps({"own": own, "given": given, "forked": forked}))
"""


MODULES = {
    "probe_stage": PROBE,
    "folds_stage": FOLDS,
    "slow_folds_stage": SLOW_FOLDS,
    "forker_stage": FORKER,
    "smoke_probe": SMOKE_PROBE,
}


def make_code(root: Path) -> Path:
    """`root/pipeline`: a copy of the package with every probe module; `root/work`: a working
    directory for the stages."""
    shutil.copytree(
        ROOT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name, source in MODULES.items():
        (root / "pipeline" / f"{name}.py").write_text(source)
    (root / "work").mkdir()
    return root


@pytest.fixture(scope="session")
def probe_code(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The session's shared copy (`build_once`: one for every xdist worker, so one runner)."""
    return build_once("probe-code", make_code, tmp_path_factory, worker_id)
