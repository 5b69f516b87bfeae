"""Release ids, release records (`deploy/<target>.json`) and a target's gate settings.

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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.io import dumps_json, read_json, sha256_bytes

RELEASE_ID = re.compile(r"^r(?P<seq>[0-9]{4,})-(?P<bundle>[0-9a-f]{16})$")


def parse_release_id(release: str) -> tuple[int, str]:
    """(sequence, bundle id) of a release id; ValueError when it is not one."""
    match = RELEASE_ID.match(release)
    if not match:
        raise ValueError(f"{release!r} is not a release id (r<4+ digits>-<16 hex bundle id>)")
    return int(match["seq"]), match["bundle"]


def release_id(sequence: int, bundle_id: str) -> str:
    return f"r{sequence:04d}-{bundle_id}"


def next_release_id(parent: str | None, bundle_id: str) -> str:
    """The id the next release of `bundle_id` gets after `parent` (None: the first release)."""
    sequence = parse_release_id(parent)[0] + 1 if parent else 1
    return release_id(sequence, bundle_id)


@dataclass(frozen=True)
class ReleaseRecord:
    """What `deploy/<target>.json` says; `release` is None before the first release."""

    target: str
    release: str | None
    data: dict[str, Any]

    @property
    def bundle_id(self) -> str | None:
        return None if self.release is None else str(self.data["bundle"]["id"])

    @property
    def bundle_sha256(self) -> str | None:
        return None if self.release is None else str(self.data["bundle"]["sha256"])

    @property
    def parent(self) -> str | None:
        return self.data.get("parent")


def read_record(path: Path, target: str) -> ReleaseRecord:
    """Read and check `deploy/<target>.json`; a broken record is an error, never "no release"."""
    try:
        data = read_json(path)
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} does not exist: every declared target needs its release record",
            hint=f'create it with {{"target": "{target}", "release": null}} and commit it',
        ) from exc
    except ValueError as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from exc
    return check_record(data, str(path), target)


def check_record(data: Any, source: str, target: str) -> ReleaseRecord:
    """Check parsed release-record JSON; `source` names where it came from in messages (a
    path, or `<commit>:deploy/<target>.json` when `mlops sync` reads a fetched commit)."""
    if not isinstance(data, dict) or data.get("target") != target or "release" not in data:
        raise ArtifactError(
            f'{source}: expected an object with "target": "{target}" and "release"',
            hint="restore it from git (`git checkout -- " + source + "`)",
        )
    release = data["release"]
    if release is not None:
        try:
            _, bundle = parse_release_id(release)
        except ValueError as exc:
            raise ArtifactError(f"{source}: release: {exc}") from exc
        bundle_data = data.get("bundle") or {}
        if bundle_data.get("id") != bundle or not isinstance(bundle_data.get("sha256"), str):
            raise ArtifactError(
                f"{source}: bundle.id / bundle.sha256 do not match release {release}",
                hint="deploy/*.json is written by `mlops release`; restore it from git",
            )
    return ReleaseRecord(target, release, data)


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
