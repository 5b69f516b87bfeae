"""The maintain stage and `mlops maintain --apply`, run for real in a reproduced project."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.deploy.bundle import load_bundle
from pipeline.deploy.scoring import predict
from pipeline.journal import pending
from pipeline.windows import track_partitions, write_window
from tests.conftest import BIN, digests, dvc, mlops, sh
from tests.fault import fault_env

pytestmark = pytest.mark.integration


def ran(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


def local_conf(project: Path, extra: str) -> None:
    """Merge `extra` (YAML) into the copy's machine-local overrides and recompose."""
    from omegaconf import OmegaConf

    path = project / "conf/local/default.yaml"
    merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(extra))
    path.write_text("# @package _global_\n" + OmegaConf.to_yaml(merged))
    mlops("compose", cwd=project)


def release(project: Path) -> str:
    dvc("repro", cwd=project)
    mlops("release", cwd=project)
    dvc("repro", cwd=project)
    return json.loads((project / "deploy/local.json").read_text())["release"]


def production_window(
    project: Path,
    release_id: str,
    *,
    start: str,
    labels: Any = "truth",
    rows: int = 100,
    seed: int = 0,
    shift: float = 0.0,
) -> Path:
    """Pool rows scored by the released bundle, as `mlops logs snapshot` writes them."""
    record = json.loads((project / "deploy/local.json").read_text())
    bundle = load_bundle(project / record["bundle"]["path"], record["bundle"]["sha256"])
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    rng = np.random.default_rng(seed)
    sample = pool.iloc[rng.integers(0, len(pool), rows)].reset_index(drop=True)
    features = sample[bundle.signature.names].copy()
    if shift:
        features = features * (1 + shift)
    pred, _ = predict(bundle.model, features, bundle.task)
    frame = features.copy()
    frame["__request_id__"] = [f"{start}-{seed}-{i}" for i in range(rows)]
    frame["__time__"] = pd.Timestamp(start) + pd.to_timedelta(np.arange(rows), unit="s")
    frame["__release__"] = release_id
    frame["__prediction__"] = pred
    frame["__label__"] = sample["target"].to_numpy() if isinstance(labels, str) else labels
    frame["__flags__"] = None
    window = write_window(frame, project / "data/production")
    track_partitions([window.path.parent])  # one DVC output a month (pipeline/windows.py)
    return window.path


@pytest.mark.slow  # retrain, apply, kill, retry; test_own_data_end_to_end applies one by default
def test_retrain_applies_once_and_feeds_training_only(project: Path) -> None:
    local_conf(project, "maintain:\n  policies:\n    new_labels:\n      min_rows: 150\n")
    rel = release(project)
    for i in range(2):
        production_window(project, rel, start=f"2026-03-0{i + 1}T00:00:00+00:00", seed=i)
    log = dvc("repro", cwd=project).stdout
    assert ran(log) == ["monitor", "maintain"]
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["action"] == "retrain", decision["reason"]
    assert decision["as_of"].startswith("2026-03-02")
    assert "200 labelled row(s)" in decision["reason"]
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "windows"], project)

    # Issue 10: killed just before its ledger's rename, apply left the feedback rows written
    # and the ledger not, and every retry was refused ("the data has no rows"). Now the
    # change is journaled: `verify` fails until the retry rolls it back, then completes it.
    ledger_before = (project / "maintain/ledger.json").read_bytes()
    killed = subprocess.run(
        [str(BIN / "mlops"), "maintain", "--apply", "--no-repro"],
        cwd=project,
        env=fault_env(MLOPS_TEST_KILL_AT_FSYNC="maintain/ledger.json"),
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert (project / "maintain/ledger.json").read_bytes() == ledger_before
    assert list((project / "data/feedback").rglob("*.parquet"))  # written, not yet in the ledger
    verify = mlops("verify", cwd=project, check=False)
    assert verify.returncode == 1
    assert "an interrupted `mlops maintain --apply` left its changes half-done" in verify.stdout

    out = mlops("maintain", "--apply", "--no-repro", cwd=project).stdout
    assert "retrain: 200 labelled production row(s)" in out
    ledger = json.loads((project / "maintain/ledger.json").read_text())["entries"]
    assert [e["action"] for e in ledger] == ["retrain"] and ledger[0]["rows"] == 200
    counts = {"labelled": 200, "kept": 200, "duplicate": 0, "refused": 0, "problems": []}
    assert ledger[0]["feedback"] == counts
    assert "(200 labelled: 200 kept, 0 duplicate, 0 refused)" in out
    feedback = list((project / "data/feedback/breast_cancer").glob("*.parquet"))
    assert len(feedback) == 1
    assert (project / f"data/feedback/breast_cancer/{feedback[0].name}.dvc").exists()
    assert set(pd.read_parquet(feedback[0])["__release__"]) == {rel}
    assert pending(project) is None and not list(project.rglob(".*.tmp"))
    assert mlops("verify", cwd=project).returncode == 0

    # applying the same decision again changes nothing
    watched = ("data/feedback/**/*", "maintain/*", "conf/**/*", "params.yaml")
    before = digests(project, watched)
    again = mlops("maintain", "--apply", "--no-repro", cwd=project)
    assert "already applied" in again.stdout
    assert digests(project, watched) == before

    # the retrain: feedback rows join the train split only; the stage no longer proposes it
    log = dvc("repro", cwd=project).stdout
    assert "prepare" in ran(log) and "maintain" in ran(log)
    split = json.loads((project / "reports/develop/split.json").read_text())
    assert split["feedback"]["rows"] == 200
    assert split["rows"]["test"] == len(pd.read_parquet(project / "data/prepared/test.parquet"))
    assert split["rows"]["train"] == 354 + 200
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["action"] == "none"


def test_stale_decision_is_refused(project: Path) -> None:
    ledger = project / "maintain/ledger.json"
    ledger.write_text(
        json.dumps(
            {"entries": [{"decision_id": "x", "action": "alert", "target": "local", "as_of": None}]}
        )
    )
    before = digests(project)
    proc = mlops("maintain", "--apply", cwd=project, check=False)
    assert proc.returncode == 2 and "decided on another ledger" in proc.stderr
    assert digests(project) == before


@pytest.mark.slow  # as test_monitor_stages.py's threshold change
def test_config_only_threshold_change_reruns_only_monitor_and_maintain(project: Path) -> None:
    local_conf(project, "maintain:\n  cooldown_days: 3\n")
    assert ran(dvc("repro", cwd=project).stdout) == ["maintain"]
    # 18 of 30 columns drift in the shifted window: under a 0.9 rule the dataset no longer does
    local_conf(project, "monitor:\n  drift:\n    drift_share: 0.9\n")
    assert ran(dvc("repro", cwd=project).stdout) == ["monitor", "maintain"]


@pytest.mark.slow
def test_rollback_when_the_live_release_is_worse_than_its_parent(project: Path) -> None:
    rel_a = release(project)
    # A second, much weaker champion, let through by loosened gates (a team's explicit, and
    # here regrettable, choice): every candidate ties, the simplest (logistic regression) wins.
    local_conf(
        project,
        "selection:\n  tolerance: 1.0\n  floors: {}\n  baseline: {beat: null}\n"
        "candidates:\n  logistic_regression:\n    C: 0.0003\n"
        "    _search_: {method: none}\n"
        "deploy:\n  targets:\n    local:\n      gates:\n"
        "        compare: {margin: 1.0}\n"
        "maintain:\n  policies:\n    rollback: {metric: accuracy}\n",
    )
    rel_b = release(project)
    record = json.loads((project / "deploy/local.json").read_text())
    assert rel_b != rel_a and record["parent"] == rel_a
    # production labels that the previous release gets right (its own predictions)
    old = load_bundle(project / "bundles" / rel_a.split("-")[1])
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    sample = pool.iloc[np.random.default_rng(5).integers(0, len(pool), 100)]
    truth, _ = predict(old.model, sample[old.signature.names], old.task)
    production_window(project, rel_b, start="2026-04-01T00:00:00+00:00", seed=5, labels=truth)
    dvc("repro", cwd=project)
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["action"] == "rollback", decision["policies"]
    evidence = next(p for p in decision["policies"] if p["policy"] == "rollback")["evidence"]
    assert evidence["previous"] == rel_a and evidence["live"] == rel_b
    assert evidence["low"] > 0.02 and evidence["rows"] == 100

    mlops("maintain", "--apply", cwd=project)  # pins rel_a, rejects rel_b, dvc repro
    pins = (project / "conf/deploy/pins/generated.yaml").read_text()
    assert rel_a in pins and rel_b in pins
    gate = json.loads((project / "reports/deploy/local.json").read_text())
    assert gate["decision"] == "propose", gate
    mlops("release", "--target", "local", cwd=project)
    record = json.loads((project / "deploy/local.json").read_text())
    assert record["bundle"]["id"] == rel_a.split("-")[1] and record["pinned"] == rel_a
    ledger = json.loads((project / "maintain/ledger.json").read_text())["entries"]
    assert [e["action"] for e in ledger] == ["rollback"]
