"""The loop on a real service: traffic, the analysis of the logged step, and the step it
causes (`mlops rollout analyze --apply`), which the running service then follows. A candidate
that disagrees with the stable release is aborted and rejected; a good one is promoted through
every step."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.conftest import mlops
from tests.deploy.serving import (
    ROOT,
    Built,
    constant_bundle,
    good_record,
    make_bundle,
    project,
    running,
    wait_for,
)
from tests.rollout.test_service_rollout import _entries, _rollout


def _project(tmp_path: Path) -> Path:
    """A project `mlops` accepts (the real conf/ and params.yaml) serving the churn bundles.
    Model times of a few milliseconds are noise at this scale: the latency ratio is relaxed."""
    root = project(tmp_path)
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf/local").mkdir()
    conf = root / "conf/deploy/local.yaml"
    text = conf.read_text()
    assert "max_latency_ratio: 2.0 " in text
    conf.write_text(text.replace("max_latency_ratio: 2.0 ", "max_latency_ratio: 50.0 "))
    mlops("compose", cwd=root)
    return root


def _traffic(client: httpx.Client, start: int, n: int) -> None:
    for i in range(start, start + n, 10):
        records = [
            good_record(customer_id=c, tenure_months=c % 60, monthly_charges=20 + c % 90)
            for c in range(i, i + 10)
        ]
        assert client.post("/predict", json=records).status_code == 200


def _logged(root: Path, n: int) -> None:
    wait_for(lambda: len(_entries(root)) >= n, timeout=20)


def test_a_shadow_candidate_that_disagrees_is_aborted_and_rejected(tmp_path: Path) -> None:
    root = _project(tmp_path)
    stable: Built = make_bundle(root, sequence=1)
    bad = constant_bundle(root, "yes", 2)  # answers "yes" whatever it is asked
    _rollout(root, stable, bad, "shadow", steps=[{"weight": 0, "hold": {"requests": 40}}])
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.rollout is not None)
        _traffic(client, 0, 20)
        _logged(root, 20)
        waiting = mlops("rollout", "analyze", "--target", "local", "--apply", cwd=root).stdout
        assert "local: wait at step 1/1 (20 candidate requests)" in waiting
        _traffic(client, 20, 40)
        _logged(root, 60)
        out = mlops("rollout", "analyze", "--target", "local", "--apply", cwd=root).stdout
        assert "local: abort at step 1/1" in out and "agreement" in out
        assert f"aborted the rollout of {bad.release}" in out
        wait_for(lambda: srv.service.slot.rollout is None)
        assert srv.service.slot.current is not None
        assert srv.service.slot.current.release == stable.release
    assert bad.release in (root / "conf/deploy/pins/generated.yaml").read_text()
    evidence = (root / "reports/rollout/local.json").read_text()
    assert '"verdict": "abort"' in evidence


def test_a_good_canary_is_promoted_through_every_step(tmp_path: Path) -> None:
    root = _project(tmp_path)
    stable = make_bundle(root, sequence=1)
    good = make_bundle(root, sequence=2, C=0.9)  # nearly the same model
    steps = [{"weight": 0.3, "hold": {"requests": 20}}, {"weight": 0.7, "hold": {"requests": 20}}]
    _rollout(root, stable, good, "canary", key="customer_id", steps=steps)
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.rollout is not None)
        _traffic(client, 0, 100)
        _logged(root, 100)
        out = mlops("rollout", "analyze", "--target", "local", "--apply", cwd=root).stdout
        assert "local: advance at step 1/2" in out and "step 2 (weight 0.7)" in out
        wait_for(lambda: srv.service.slot.rollout.weight == 0.7)
        _traffic(client, 100, 60)
        _logged(root, 160)
        out = mlops("rollout", "analyze", "--target", "local", "--apply", cwd=root).stdout
        assert "local: promote at step 2/2" in out and f"promoted {good.release}" in out
        wait_for(lambda: srv.service.slot.rollout is None)
        assert srv.service.slot.current.release == good.release
        body = client.post("/predict", json=good_record()).json()
        assert body["release"] == good.release
