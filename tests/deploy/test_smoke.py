"""The gate's smoke test runs in a fresh process: forked from the warm stage runner when one
serves the code (milliseconds), else a new interpreter. Both give the same result, and the
serving thread settings hold in either."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.deploy import smoke
from tests import probe_code as probes
from tests.conftest import env

pytestmark = pytest.mark.integration

probe_code = probes.probe_code  # the session's copy of the package with the probes


def smoke_twice(code: Path, template: Path, runner: bool) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.run",
            "pipeline.smoke_probe",
            str(template / "models/bundle"),
            str(template / "data/prepared/test.parquet"),
        ],
        cwd=code,
        env=dict(env(), MLOPS_RUNNER="1" if runner else "0", PYTHONPATH=str(code)),
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.mark.long(15)  # seconds on CI: handed out early
def test_forked_from_the_runner_or_in_a_new_interpreter_the_result_is_the_same(
    template: Path, probe_code: Path
) -> None:
    """`pipeline.smoke_probe` (tests/probe_code.py) runs the smoke test twice, in a stage forked
    from the shared probe runner and in a plain interpreter."""
    warm = smoke_twice(probe_code, template, runner=True)
    cold = smoke_twice(probe_code, template, runner=False)
    assert warm["forked"] == [0, 0] and cold["forked"] == [None, None]
    for run in ("own", "given"):
        assert warm[run] == cold[run]
        assert warm[run]["passed"], warm[run]["problems"]
        assert warm[run]["environment"]["OMP_NUM_THREADS"] == "1"
    assert warm["own"]["reference"] == "predictions.parquet"
    assert warm["given"]["reference"].startswith("recomputed by the gate")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: one thread per pool")
def test_a_thread_pool_above_the_serving_count_fails_it(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pools must not run with more threads than serving does: limits that did not take (here:
    threadpoolctl made to do nothing inside the smoke test, pools left at two threads) are a
    problem, not a silent pass."""
    import contextlib

    import threadpoolctl

    bundle, test = template / "models/bundle", template / "data/prepared/test.parquet"
    assert smoke.check(bundle, test, 50, 1e-12, threads=1)["passed"]
    with threadpoolctl.threadpool_limits(limits=2):
        pools = smoke._pool_threads()
        monkeypatch.setattr(
            threadpoolctl, "threadpool_limits", lambda **_: contextlib.nullcontext()
        )
        result = smoke.check(bundle, test, 50, 1e-12, threads=1)
    over = {pool: n for pool, n in pools.items() if n > 1}
    assert over and not result["passed"]
    assert result["problems"] == [
        "thread pools above the serving 1 thread(s): "
        + ", ".join(f"{pool}: {n}" for pool, n in sorted(over.items()))
    ]
