"""`mlops status` and `mlops sync` read a rollout: the live answer must name the declared
candidate, its bytes, step and weight to be "in sync"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from pipeline.deploy.live import describe, serves_record
from pipeline.deploy.status import target_lines
from pipeline.io import write_json
from pipeline.release_record import check_record
from tests.rollout.helpers import CANDIDATE, CANDIDATE_SHA, STABLE, STABLE_SHA, rollout_record

SPEC = {"kind": "service", "serve": {"host": "127.0.0.1", "port": 8000}}


def _live(step: int = 0, weight: float = 0.1, sha: str = CANDIDATE_SHA) -> dict[str, Any]:
    return {
        "release": STABLE,
        "bundle": {"id": STABLE_SHA[:16], "sha256": STABLE_SHA},
        "target": "local",
        "rollout": {
            "strategy": "canary",
            "step": step,
            "weight": weight,
            "candidate": CANDIDATE,
            "bundle": {"id": sha[:16], "sha256": sha},
        },
    }


def _client(answer: dict[str, Any]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(200, json=answer)))


def test_in_sync_needs_the_declared_candidate_step_and_bytes() -> None:
    record = check_record(rollout_record(), "deploy/local.json", "local")
    assert serves_record(_live(), record)
    assert not serves_record(_live(step=1, weight=0.5), record)  # the service lags a step
    assert not serves_record(_live(sha="cd" * 32), record)  # other bytes for the candidate
    assert not serves_record({k: v for k, v in _live().items() if k != "rollout"}, record)
    assert describe(_live()) == f"{STABLE} + canary {CANDIDATE} (step 1, weight 0.1)"


def test_status_shows_the_rollout_and_whether_the_service_follows_it(tmp_path: Path) -> None:
    write_json(tmp_path / "deploy/local.json", rollout_record())
    lines = target_lines(tmp_path, "local", SPEC, _client(_live()))
    text = "\n".join(lines)
    assert f"live: {STABLE} + canary {CANDIDATE} (step 1, weight 0.1)" in text
    assert "in sync" in text
    assert f"rollout: canary of {CANDIDATE} against {STABLE}: step 1/2, weight 0.1" in text
    assert "last step: start by release" in text
    lagging = "\n".join(target_lines(tmp_path, "local", SPEC, _client(_live(1, 0.5))))
    assert "OUT OF SYNC" in lagging
