"""Monitoring during a rollout: it keeps judging the stable release, and its reports say that
a candidate serves (or shadows) part of the traffic and where that candidate is judged."""

from __future__ import annotations

from pathlib import Path

from pipeline.monitor.html import monitored_line
from pipeline.monitor.monitored_bundle import monitored_bundle
from tests.deploy.serving import constant_bundle, project, release
from tests.rollout.test_service_rollout import _rollout


def _doc(root: Path) -> dict:
    info = monitored_bundle(root, "local")
    monitored = {
        "target": "local",
        "release": info.release,
        "task": "classification",
        "bundle": {"id": info.id, "source": info.source, "path": info.location},
        "reference_rows": None,
        "reference_mode": None,
    }
    if info.rollout:
        monitored["rollout"] = info.rollout
    return {"monitored": monitored}


def test_the_monitoring_page_names_a_running_rollout(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = constant_bundle(root, "no", 1), constant_bundle(root, "yes", 2)
    release(root, stable)
    plain = monitored_line(_doc(root))
    assert "rollout" not in plain  # nothing changes without one
    _rollout(root, stable, candidate)
    doc = _doc(root)
    assert doc["monitored"]["release"] == stable.release  # still the stable release judged
    line = monitored_line(doc)
    assert line.startswith(plain)
    assert f"candidate <b>{candidate.release}</b> answers 30% of the traffic, step 1 of 2" in line
    assert "last step: start by release" in line and "mlops rollout analyze" in line
