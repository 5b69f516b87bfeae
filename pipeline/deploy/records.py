"""Release ids, release records (`deploy/<target>.json`) and a target's gate settings.

The record's format (ids, parsing, the checks every reader applies) is owned by the foundation
module `pipeline.release_record`, so that monitoring and maintenance read a release exactly as
deploy does; it is re-exported here for the deploy layer.

A release id is `r<sequence>-<bundle id>`, e.g. `r0003-3f9a1c2b5e6d7f80`: the sequence is the
parent release's plus one (at least four digits, so ids sort and read well in review), and the
bundle id makes it unique across branches that release in parallel.

`deploy/<target>.json` is the desired state of one target, written only by `mlops release` (and
restored by `git revert`); the graph reads it as a dependency and never writes it:

    {
      "target": "local",
      "release": "r0002-3f9a1c2b5e6d7f80",        # null before the first release
      "parent": "r0001-0c1d2e3f4a5b6c7d",          # the release this one replaced, or null
      "pinned": null,                              # the release a rollback pinned, if any
      "bundle": {"id": "3f9a1c2b5e6d7f80", "sha256": "<manifest sha256>",
                 "path": "bundles/3f9a1c2b5e6d7f80"},
      "model": {"name": ..., "estimator": ..., "task": ..., "classes": [...],
                "target": ..., "inputs": {name: type}},   # what the model answers
      "metrics": {"test": {...}},                  # as recorded when the gate passed
      "gates": {...},                              # the evidence from reports/deploy/<target>.json
      "new_line": {"replaces": ..., "differences": [...]}   # only when the incumbent was not
    }                                              #   comparable (pipeline/comparability.py)

No time stamps: the git commit that changes the file is the release's time and author.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.io import dumps_json, sha256_bytes
from pipeline.release_record import (
    RELEASE_ID,
    ReleaseRecord,
    check_record,
    next_release_id,
    parse_record,
    parse_release_id,
    read_record,
    release_id,
)

__all__ = [
    "RELEASE_ID",
    "ReleaseRecord",
    "TargetSpec",
    "check_record",
    "next_release_id",
    "parse_record",
    "parse_release_id",
    "read_record",
    "release_id",
    "target_params",
]


@dataclass(frozen=True)
class TargetSpec:
    """The part of `deploy.targets.<name>` the gate reads (and declares in dvc.yaml)."""

    name: str
    kind: str
    gates: Mapping[str, Any]
    pin: str | None
    rejected: tuple[str, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], name: str) -> TargetSpec:
        spec = target_params(params, name)
        return cls(name, spec["kind"], spec["gates"], spec["pin"], tuple(spec["rejected"]))

    def digest(self) -> str:
        """sha256 of exactly the settings the gate reads: a report made under other settings
        is stale, and `mlops release` refuses it."""
        data = {
            "kind": self.kind,
            "gates": self.gates,
            "pin": self.pin,
            "rejected": list(self.rejected),
        }
        return sha256_bytes(dumps_json(data).encode())

    @property
    def rejected_bundles(self) -> dict[str, str]:
        """bundle id -> the rejected release that named it."""
        return {parse_release_id(r)[1]: r for r in self.rejected}


def target_params(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`deploy.targets.<name>` of the composed params, or a ConfigError naming the targets."""
    targets = params["deploy"]["targets"]
    if name not in targets:
        from pipeline.errors import ConfigError

        raise ConfigError(
            f"no deployment target {name!r}; declared: {', '.join(targets)}",
            hint="a target is a `deploy@deploy.targets.<name>: <file>` entry in conf/config.yaml",
        )
    spec: Mapping[str, Any] = targets[name]
    return spec
