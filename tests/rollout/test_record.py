"""The rollout in `deploy/<target>.json`: one schema and one parser (pipeline.release_record);
every transition produces a record every reader accepts, and a hand-edited inconsistency is
refused with what is wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pipeline.errors import ArtifactError
from pipeline.release_record import (
    check_record,
    parse_record,
    rollout_aborted,
    rollout_promoted,
    rollout_stepped,
)
from tests.rollout.helpers import CANDIDATE, STABLE, candidate_record, rollout_record


def _check(data: dict[str, Any]) -> Any:
    return check_record(data, "deploy/local.json", "local")


def test_a_started_canary_keeps_the_stable_release_and_names_the_candidate() -> None:
    data = rollout_record()
    record = parse_record(json.dumps(data), "deploy/local.json", "local")
    assert record.release == STABLE
    rollout = record.running_rollout
    assert rollout is not None and rollout.candidate.release == CANDIDATE
    assert (rollout.strategy, rollout.step, rollout.weight, rollout.key) == ("canary", 0, 0.1, None)
    assert rollout.decisions == ({"step": 0, "action": "start", "by": "release"},)


def test_steps_promote_and_abort_are_records_every_reader_accepts() -> None:
    record = _check(rollout_record())
    stepped = _check(rollout_stepped(record, "analysis", "advance at step 1/2"))
    rollout = stepped.running_rollout
    assert rollout is not None and (rollout.step, rollout.weight) == (1, 0.5) and rollout.last_step
    assert rollout.decisions[-1] == {
        "step": 1,
        "action": "advance",
        "by": "analysis",
        "summary": "advance at step 1/2",
    }
    promoted = _check(rollout_promoted(stepped))
    assert promoted.data == candidate_record()  # exactly what a direct release writes
    aborted = _check(rollout_aborted(stepped, "analysis", "error_rate 0.3 breaches <= 0.01"))
    assert aborted.release == STABLE and aborted.running_rollout is None
    assert aborted.rollout is not None and aborted.rollout.status == "aborted"
    assert aborted.rollout.weight == 0.0 and aborted.rollout.reason.startswith("error_rate")


def test_a_shadow_rollout_has_weight_zero_throughout() -> None:
    record = _check(rollout_record("shadow"))
    assert record.running_rollout is not None and record.running_rollout.weight == 0.0


def test_nothing_steps_past_the_last_step_or_after_an_abort() -> None:
    record = _check(rollout_record())
    last = _check(rollout_stepped(record, "hand", None))
    with pytest.raises(ArtifactError, match="step 2 is past the last of 2"):
        rollout_stepped(last, "hand", None)
    aborted = _check(rollout_aborted(record, "hand", "no"))
    with pytest.raises(ArtifactError, match="no rollout is running on local"):
        rollout_promoted(aborted)


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(rollout_record())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rollout"].update(weight=0.3), "weight is 0.3, expected 0.1"),
        (lambda d: d["rollout"].update(step=5), "step 5 is past the last of 2"),
        (lambda d: d["rollout"].update(status="paused"), "rollout.status"),
        (lambda d: d["rollout"]["candidate"].update(parent=None), "expected the stable"),
        (lambda d: d["rollout"]["candidate"].update(release=STABLE), "do not match release"),
        (lambda d: d.update(release=None), "needs a stable release"),
        (lambda d: d["rollout"].pop("steps"), "'steps' is a required property"),
        (lambda d: d["rollout"].update(strategy="blue_green"), "rollout.strategy"),
    ],
)
def test_an_inconsistent_rollout_is_refused(change: Any, message: str) -> None:
    with pytest.raises(ArtifactError, match=message) as info:
        _check(_broken(change))
    assert "deploy/local.json" in info.value.render()


def test_a_record_without_a_rollout_is_unchanged_by_this_format() -> None:
    data = candidate_record()
    assert "rollout" not in data and _check(data).rollout is None


@pytest.mark.parametrize("only", [STABLE, CANDIDATE])
def test_a_pod_that_serves_one_release_does_not_route_again(tmp_path: Any, only: str) -> None:
    """A Kubernetes pod (MLOPS_RELEASE) serves its release alone: the Argo Rollout splits the
    traffic between stable and canary pods, so a candidate pod routing again would halve it."""
    from pipeline.deploy.service.releases import Desired

    text = json.dumps(rollout_record())
    everything = Desired.parse(text, tmp_path, "local", "deploy/local.json")
    assert everything.release == STABLE and everything.rollout is not None
    alone = Desired.parse(text, tmp_path, "local", "deploy/local.json", only=only)
    assert alone.release == only and alone.rollout is None
    assert alone.path == tmp_path / "bundles" / str(alone.bundle_id)
    with pytest.raises(ArtifactError, match=r"declares no release r0009-c+ \(this process"):
        Desired.parse(text, tmp_path, "local", "deploy/local.json", only="r0009-" + "c" * 16)
