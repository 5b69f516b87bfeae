"""Release ids and release records (`deploy/<target>.json`): the one type, parser and writer.

`mlops release` writes the record (pipeline/deploy/release.py, through `released_record`); the
gate, batch scoring, the service, `mlops status`/`sync`/`verify`/`summary`, the pull-request
report, monitoring and maintenance read it, each through `read_record` / `parse_record` /
`check_record`, so a record one of them refuses is refused by all (monitoring does not import
the deploy layer, so the format lives here, in a foundation). Its JSON Schema is
`pipeline/schemas/release_record.schema.json`. A record names its bundle three ways, and they
must agree: `bundle.sha256` (the manifest digest a reviewer approved), `bundle.id` (its first 16
hex digits, also the end of the release id) and `bundle.path`, which must be
`bundles/<bundle.id>`: a record cannot point a reader at any other directory.

Ids are matched as whole strings (`re.fullmatch`): a `$` anchor also matches before a trailing
newline, so `r0001-...\\n` would have passed for a release id.

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

A progressive rollout (a target whose `strategy` is shadow or canary) adds one key; `release`
stays the stable release, which answers every request the candidate does not:

      "rollout": {
        "strategy": "canary",                      # or shadow
        "status": "running",                       # or aborted (the stable serves everything)
        "step": 0, "weight": 0.1,                  # where it is: steps[step], its weight now
        "key": null,                               # canary routing field (null: request id)
        "steps": [{"weight": 0.1, "hold": {"requests": 200}}, ...],   # as it started with
        "candidate": {...},                        # the record it becomes when promoted
        "decisions": [{"step": 0, "action": "start", "by": "release"}, ...],
        "reason": "..."                            # only when aborted
      }

`rollout_started`, `rollout_stepped`, `rollout_promoted` and `rollout_aborted` are the only
ways a record changes during a rollout; every one is checked by `check_record`, so a record a
writer produces is one every reader (the service, sync, status, the gate) accepts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.paths import release_path, released_bundle

RELEASE_ID = re.compile(r"r(?P<seq>[0-9]{4,})-(?P<bundle>[0-9a-f]{16})")
SHA256 = re.compile(r"[0-9a-f]{64}")
SCHEMA_FILE = "release_record.schema.json"
RESTORE = "deploy/*.json is written by `mlops release`; restore it from git"


def parse_release_id(release: str) -> tuple[int, str]:
    """(sequence, bundle id) of a release id; ValueError when it is not one."""
    match = RELEASE_ID.fullmatch(release) if isinstance(release, str) else None
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

    @property
    def pinned(self) -> str | None:
        return self.data.get("pinned")

    @property
    def rollout(self) -> Rollout | None:
        """The rollout this record declares (running or aborted), or None."""
        data = self.data.get("rollout")
        if data is None:
            return None
        candidate = ReleaseRecord(self.target, data["candidate"]["release"], data["candidate"])
        return Rollout(
            strategy=data["strategy"],
            status=data["status"],
            step=int(data["step"]),
            weight=float(data["weight"]),
            key=data["key"],
            steps=tuple(data["steps"]),
            candidate=candidate,
            decisions=tuple(data["decisions"]),
            reason=data.get("reason"),
        )

    @property
    def running_rollout(self) -> Rollout | None:
        """The rollout the service follows now (status running), or None."""
        rollout = self.rollout
        return rollout if rollout is not None and rollout.status == RUNNING else None


RUNNING, ABORTED = "running", "aborted"


@dataclass(frozen=True)
class Rollout:
    """`rollout` of a release record (see the module docstring)."""

    strategy: str  # shadow | canary
    status: str  # running | aborted
    step: int
    weight: float
    key: str | None
    steps: tuple[dict[str, Any], ...]
    candidate: ReleaseRecord
    decisions: tuple[dict[str, Any], ...]
    reason: str | None = None

    @property
    def last_step(self) -> bool:
        return self.step == len(self.steps) - 1

    @property
    def hold(self) -> dict[str, Any]:
        """The current step's hold: {"requests": n} and/or {"seconds": s}."""
        hold: dict[str, Any] = self.steps[self.step]["hold"]
        return hold


def read_record(path: Path, target: str) -> ReleaseRecord:
    """Read and check `deploy/<target>.json`; a broken record is an error, never "no release"."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} does not exist: every declared target needs its release record",
            hint=f'create it with {{"target": "{target}", "release": null}} and commit it',
        ) from exc
    except ValueError as exc:  # not UTF-8
        raise ArtifactError(
            f"{path}: not valid JSON: {exc}",
            hint=f"restore it from git (`git checkout -- {path}`)",
        ) from exc
    return parse_record(text, str(path), target)


def parse_record(text: str | bytes, source: str, target: str) -> ReleaseRecord:
    """Parse and check a record's text; `source` names where it came from in messages (a path,
    or `<commit>:deploy/<target>.json` when `mlops sync` reads a fetched commit)."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # invalid JSON, or not UTF-8
        raise ArtifactError(
            f"{source}: not valid JSON: {exc}",
            hint=f"restore it from git (`git checkout -- {source}`)",
        ) from exc
    return check_record(data, source, target)


def check_record(data: Any, source: str, target: str) -> ReleaseRecord:
    """Check parsed release-record JSON: the explicit checks below (each with its own message),
    then the JSON Schema for the rest of the structure."""
    expected = f'expected an object with "target": "{target}" and "release"'
    if not isinstance(data, dict):
        raise ArtifactError(
            f"{source}: {expected}", hint="restore it from git (`git checkout -- " + source + "`)"
        )
    for field in ("target", "release"):
        if field not in data or (field == "target" and data[field] != target):
            got = "missing" if field not in data else repr(data[field])
            raise ArtifactError(
                f"{source}: {field}: {got}; {expected}",
                hint="restore it from git (`git checkout -- " + source + "`)",
            )
    release = data["release"]
    for field in ("parent", "pinned"):
        if data.get(field) is not None:
            try:
                parse_release_id(data[field])
            except ValueError as exc:
                raise ArtifactError(f"{source}: {field}: {exc}", hint=RESTORE) from exc
    if release is not None:
        try:
            _, bundle = parse_release_id(release)
        except ValueError as exc:
            raise ArtifactError(f"{source}: release: {exc}") from exc
        bundle_data = data.get("bundle")
        bundle_data = bundle_data if isinstance(bundle_data, dict) else {}
        sha = bundle_data.get("sha256")
        if (
            bundle_data.get("id") != bundle
            or not isinstance(sha, str)
            or not SHA256.fullmatch(sha)
            or not sha.startswith(bundle)
        ):
            raise ArtifactError(
                f"{source}: bundle.id / bundle.sha256 do not match release {release} "
                "(bundle.sha256: 64 lowercase hex digits starting with the bundle id)",
                hint=RESTORE,
            )
        expected_path = released_bundle(bundle).as_posix()
        if bundle_data.get("path") != expected_path:
            raise ArtifactError(
                f"{source}: bundle.path is {bundle_data.get('path')!r}, expected "
                f"{expected_path!r}: a release's bundle lives in bundles/<bundle id>",
                hint=RESTORE,
            )
    problems = schema_problems(data)
    if problems:
        raise ArtifactError(
            f"{source}: not a release record:\n" + "\n".join(f"  - {p}" for p in problems),
            hint=RESTORE,
        )
    if data.get("rollout") is not None:
        _check_rollout(data, source, target)
    return ReleaseRecord(target, release, data)


def _check_rollout(data: dict[str, Any], source: str, target: str) -> None:
    """What the schema cannot say about a rollout: the candidate is itself a valid record whose
    parent is the stable release, and step and weight agree with the steps."""
    rollout = data["rollout"]

    def refuse(what: str) -> None:
        raise ArtifactError(f"{source}: rollout: {what}", hint=RESTORE)

    if data["release"] is None:
        refuse("a rollout needs a stable release to roll out against (release is null)")
    candidate = check_record(rollout["candidate"], f"{source} (rollout.candidate)", target)
    if candidate.release is None or candidate.data.get("rollout") is not None:
        refuse("candidate must be a release without a rollout of its own")
    if candidate.parent != data["release"]:
        refuse(f"candidate.parent is {candidate.parent!r}, expected the stable {data['release']}")
    if candidate.bundle_id == data["bundle"]["id"]:
        refuse(f"the candidate is the stable bundle {candidate.bundle_id}")
    step, steps = rollout["step"], rollout["steps"]
    if step >= len(steps):
        refuse(f"step {step} is past the last of {len(steps)} step(s)")
    weight = 0.0 if rollout["status"] == ABORTED else steps[step]["weight"]
    if rollout["strategy"] == "shadow":
        weight = 0.0
    if rollout["weight"] != weight:
        status = rollout["status"]
        refuse(f"weight is {rollout['weight']}, expected {weight} (step {step}, {status})")


@functools.cache
def schema() -> dict[str, Any]:
    """The release record's JSON Schema (pipeline/schemas/release_record.schema.json)."""
    text = (resources.files("pipeline") / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_problems(data: Any) -> list[str]:
    """`field: what is wrong` for every schema violation of a record, in a stable order."""
    from jsonschema import Draft202012Validator

    errors = Draft202012Validator(schema()).iter_errors(data)
    out = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        field = ".".join(str(p) for p in error.absolute_path) or "(record)"
        out.append(f"{field}: {error.message}")
    return out


def released_record(
    target: str,
    release: str,
    *,
    parent: str | None,
    pinned: str | None,
    bundle_sha256: str,
    model: Mapping[str, Any],
    metrics: Mapping[str, Any],
    gates: Mapping[str, Any],
    new_line: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record `mlops release` writes for a new release, checked by the same rules every
    reader applies (a record the writer produces is one every reader accepts)."""
    _, bundle = parse_release_id(release)
    data: dict[str, Any] = {
        "target": target,
        "release": release,
        "parent": parent,
        "pinned": pinned,
        "bundle": {
            "id": bundle,
            "sha256": bundle_sha256,
            "path": released_bundle(bundle).as_posix(),
        },
        "model": dict(model),
        "metrics": dict(metrics),
        "gates": dict(gates),
        # a release whose incumbent was not comparable starts a new line: the log says why
        **({"new_line": dict(new_line)} if new_line else {}),
    }
    check_record(data, release_path(target).as_posix(), target)
    return data


# ------------------------------------------------------------------------------ rollouts
def rollout_started(
    stable: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    strategy: str,
    key: str | None,
    steps: list[dict[str, Any]],
) -> dict[str, Any]:
    """The stable record with a rollout of `candidate` (a record `released_record` wrote, whose
    parent is the stable release) at its first step."""
    data = {k: v for k, v in stable.items() if k != "rollout"}
    data["rollout"] = {
        "strategy": strategy,
        "status": RUNNING,
        "step": 0,
        "weight": 0.0 if strategy == "shadow" else steps[0]["weight"],
        "key": key,
        "steps": [dict(s) for s in steps],
        "candidate": dict(candidate),
        "decisions": [{"step": 0, "action": "start", "by": "release"}],
    }
    return _checked(data)


def rollout_stepped(record: ReleaseRecord, by: str, summary: str | None) -> dict[str, Any]:
    """The record with its running rollout at the next step."""
    rollout = _running(record)
    step = rollout.step + 1
    if step >= len(rollout.steps):
        raise ArtifactError(
            f"{release_path(record.target)}: rollout: step {step} is past the last of "
            f"{len(rollout.steps)} step(s)",
            hint="the last step is followed by promote (or abort), never another step",
        )
    data = _with_rollout(
        record,
        step=step,
        weight=0.0 if rollout.strategy == "shadow" else rollout.steps[step]["weight"],
        decisions=[*rollout.decisions, _decision(step, "advance", by, summary)],
    )
    return _checked(data)


def rollout_promoted(record: ReleaseRecord) -> dict[str, Any]:
    """The candidate's own record: what a direct release would have written (its parent is the
    stable release). The rollout's decisions stay in the git history of the file."""
    return _checked(dict(_running(record).candidate.data))


def rollout_aborted(record: ReleaseRecord, by: str, reason: str) -> dict[str, Any]:
    """The stable record with the rollout marked aborted: the stable serves everything."""
    rollout = _running(record)
    data = _with_rollout(
        record,
        status=ABORTED,
        weight=0.0,
        reason=reason,
        decisions=[*rollout.decisions, _decision(rollout.step, "abort", by, reason)],
    )
    return _checked(data)


def _running(record: ReleaseRecord) -> Rollout:
    rollout = record.running_rollout
    if rollout is None:
        raise ArtifactError(
            f"{release_path(record.target)}: no rollout is running on {record.target}",
            hint="a rollout starts with `mlops release` on a target whose strategy is shadow or "
            "canary",
        )
    return rollout


def _with_rollout(record: ReleaseRecord, **changes: Any) -> dict[str, Any]:
    data = dict(record.data)
    data["rollout"] = {**data["rollout"], **changes}
    return data


def _decision(step: int, action: str, by: str, summary: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"step": step, "action": action, "by": by}
    if summary:
        entry["summary"] = summary
    return entry


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    target = str(data["target"])
    check_record(data, release_path(target).as_posix(), target)
    return data
