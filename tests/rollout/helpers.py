"""Release records with and without a rollout, for the rollout tests (no bundles needed)."""

from __future__ import annotations

from typing import Any

from pipeline.release_record import released_record, rollout_started

STABLE_SHA = "a1" * 32
CANDIDATE_SHA = "b2" * 32
STABLE = f"r0001-{STABLE_SHA[:16]}"
CANDIDATE = f"r0002-{CANDIDATE_SHA[:16]}"
SHADOW_STEPS = [{"weight": 0, "hold": {"requests": 50}}]
STEPS = [
    {"weight": 0.1, "hold": {"requests": 50}},
    {"weight": 0.5, "hold": {"requests": 50}},
]


def stable_record(target: str = "local") -> dict[str, Any]:
    return released_record(
        target,
        STABLE,
        parent=None,
        pinned=None,
        bundle_sha256=STABLE_SHA,
        model={"name": "stable"},
        metrics={},
        gates={},
    )


def candidate_record(target: str = "local") -> dict[str, Any]:
    return released_record(
        target,
        CANDIDATE,
        parent=STABLE,
        pinned=None,
        bundle_sha256=CANDIDATE_SHA,
        model={"name": "candidate"},
        metrics={},
        gates={},
    )


def rollout_record(
    strategy: str = "canary", steps: list[dict[str, Any]] | None = None, key: str | None = None
) -> dict[str, Any]:
    return rollout_started(
        stable_record(),
        candidate_record(),
        strategy=strategy,
        key=key,
        steps=steps or (STEPS if strategy == "canary" else SHADOW_STEPS),
    )
