"""Release ids and release records (`deploy/<target>.json`): the format every reader shares.

`mlops release` writes the record (pipeline/deploy/release.py); the gate, batch scoring, the
service, `mlops verify`/`sync`, monitoring and maintenance read it, each through `read_record` /
`check_record`, so a record one of them refuses is refused by all (monitoring does not import
the deploy layer, so the format lives here, in a foundation). A record names its bundle three
ways, and they must agree: `bundle.sha256` (the manifest digest a reviewer approved),
`bundle.id` (its first 16 hex digits, also the end of the release id) and `bundle.path`, which
must be `bundles/<bundle.id>`: a record cannot point a reader at any other directory.

Ids are matched as whole strings (`re.fullmatch`): a `$` anchor also matches before a trailing
newline, so `r0001-...\\n` would have passed for a release id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.io import read_json
from pipeline.paths import released_bundle

RELEASE_ID = re.compile(r"r(?P<seq>[0-9]{4,})-(?P<bundle>[0-9a-f]{16})")
SHA256 = re.compile(r"[0-9a-f]{64}")


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


def read_record(path: Path, target: str) -> ReleaseRecord:
    """Read and check `deploy/<target>.json`; a broken record is an error, never "no release"."""
    try:
        data = read_json(path)
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path} does not exist: every declared target needs its release record",
            hint=f'create it with {{"target": "{target}", "release": null}} and commit it',
        ) from exc
    except ValueError as exc:  # invalid JSON, or not UTF-8
        raise ArtifactError(
            f"{path}: not valid JSON: {exc}",
            hint=f"restore it from git (`git checkout -- {path}`)",
        ) from exc
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
                hint="deploy/*.json is written by `mlops release`; restore it from git",
            )
        expected = released_bundle(bundle).as_posix()
        if bundle_data.get("path") != expected:
            raise ArtifactError(
                f"{source}: bundle.path is {bundle_data.get('path')!r}, expected {expected!r}: "
                "a release's bundle lives in bundles/<bundle id>",
                hint="deploy/*.json is written by `mlops release`; restore it from git",
            )
    return ReleaseRecord(target, release, data)
