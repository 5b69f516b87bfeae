"""The image record, `deploy/images/<target>.json`: which container image serves a kubernetes
target's release. The one type, parser and writer.

The image is built outside the graph (.github/workflows/image.yml, on a release commit) and its
digest only exists once a registry has it, so it cannot be part of the release record that
`mlops release` writes before the build. `mlops image record --target T --digest sha256:<hex>`
writes it beside the release, as a reviewable change of its own:

    {
      "target": "k8s",
      "release": "r0002-3f9a1c2b5e6d7f80",        # the release the image serves
      "bundle": {"id": "3f9a1c2b5e6d7f80", "sha256": "<manifest sha256>", "mode": "fetch"},
      "image": "ghcr.io/example/gitops-mlops@sha256:<64 hex>"
    }

The release an image is recorded for is the target's *workload release* (`workload_release`):
the release record's release, or during a running canary rollout its candidate (the pods of an
Argo Rollouts canary run the new template; the stable pods keep the old one). Rendering
(`pipeline.deploy.environments`) takes the workload's image, release and bundle from this record
only: until the image of a new release is recorded, the rendered workload keeps serving the
release its image was built for, so the cluster never runs a release without its image.

Strict: unknown keys, a digest that is not `sha256:<64 lowercase hex>`, an image that is not
`<repository>@sha256:<hex>` or a bundle that does not match the release id are refused (exit 2,
naming the file and key), and every write is atomic. An image recorded in another repository
than the target now declares is still rendered (it exists there), with a note. JSON Schema:
pipeline/schemas/image_record.schema.json.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError, ConfigError, GateError
from pipeline.io import atomic_write_text, dumps_json
from pipeline.params import ImageSpec, TargetSpec
from pipeline.paths import image_record_path, release_path
from pipeline.release_record import ReleaseRecord, parse_release_id

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
SCHEMA_FILE = "image_record.schema.json"
RESTORE = "deploy/images/*.json is written by `mlops image record`; restore it from git"


@dataclass(frozen=True)
class ImageRecord:
    """What `deploy/images/<target>.json` says (see the module docstring)."""

    target: str
    release: str
    bundle_id: str
    bundle_sha256: str
    mode: str  # fetch | baked
    image: str  # <repository>@sha256:<hex>

    @property
    def repository(self) -> str:
        return self.image.rpartition("@")[0]

    @property
    def digest(self) -> str:
        """sha256:<64 hex>"""
        return self.image.rpartition("@")[2]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "release": self.release,
            "bundle": {"id": self.bundle_id, "sha256": self.bundle_sha256, "mode": self.mode},
            "image": self.image,
        }


def check_digest(text: str) -> str:
    """`sha256:<64 lowercase hex>` as given (a ConfigError otherwise: a tag or a short digest
    would let the image change under a reviewed release)."""
    if not isinstance(text, str) or not DIGEST.fullmatch(text):
        raise ConfigError(
            f"--digest {text!r} is not an image digest: expected sha256:<64 lowercase hex digits>",
            hint="pass the digest the registry reported for the pushed image (docker/build-push-"
            "action's `digest` output, or `docker buildx imagetools inspect IMAGE`), not a tag",
        )
    return text


@functools.cache
def schema() -> dict[str, Any]:
    """The image record's JSON Schema (pipeline/schemas/image_record.schema.json)."""
    text = (resources.files("pipeline") / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_image(text: str | bytes, source: str, target: str) -> ImageRecord:
    """Parse and check an image record's text; `source` names it in messages."""
    from jsonschema import Draft202012Validator

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ArtifactError(f"{source}: not valid JSON: {exc}", hint=RESTORE) from exc
    errors = sorted(
        Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(map(str, e.path))
    )
    if errors:
        problems = [
            f"{'.'.join(map(str, e.absolute_path)) or '(record)'}: {e.message}" for e in errors
        ]
        raise ArtifactError(
            f"{source}: not an image record:\n" + "\n".join(f"  - {p}" for p in problems),
            hint=RESTORE,
        )
    bundle = data["bundle"]
    if data["target"] != target:
        raise ArtifactError(f"{source}: target is {data['target']!r}, expected {target!r}")
    _, bundle_id = parse_release_id(data["release"])
    if bundle["id"] != bundle_id or not bundle["sha256"].startswith(bundle_id):
        raise ArtifactError(
            f"{source}: bundle.id / bundle.sha256 do not match release {data['release']} "
            "(the release id ends with the bundle id, the digest starts with it)",
            hint=RESTORE,
        )
    return ImageRecord(
        target, data["release"], bundle["id"], bundle["sha256"], bundle["mode"], data["image"]
    )


def read_image(root: Path, target: str) -> ImageRecord | None:
    """The target's image record, or None when no image has been recorded yet."""
    path = root / image_record_path(target)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_image(text, str(image_record_path(target)), target)


def workload_release(record: ReleaseRecord) -> ReleaseRecord | None:
    """The release the target's pods should run: the candidate of a running canary rollout
    (Argo Rollouts shifts traffic to the new template step by step), else the release (a
    shadow candidate answers nobody, so its pods would serve nothing); None before the first
    release."""
    rollout = record.running_rollout
    if rollout is not None and rollout.strategy == "canary":
        return rollout.candidate
    return record if record.release is not None else None


def image_spec(spec: TargetSpec) -> ImageSpec:
    """The target's declared image, or a ConfigError for a target without one."""
    if spec.image is None:
        why = (
            "a systemd target runs `mlops serve` from a deployment checkout that `mlops sync` "
            "keeps in step, not from an image"
            if spec.kind == "systemd"
            else f"a {spec.kind} target has no image"
        )
        raise ConfigError(
            f"deploy.targets.{spec.name} is a {spec.kind} target: {why}",
            hint="images are recorded for targets of kind kubernetes (conf/deploy/kubernetes.yaml)",
        )
    return spec.image


def build_record(spec: TargetSpec, record: ReleaseRecord, digest: str) -> ImageRecord:
    """The image record of `digest` for the target's workload release (a GateError when nothing
    is released yet)."""
    image = image_spec(spec)
    digest = check_digest(digest)
    serving = workload_release(record)
    if serving is None or serving.release is None:
        raise GateError(
            f"{release_path(spec.name)}: nothing has been released to {spec.name}, so no image "
            "can serve it yet",
            hint="release first (`dvc repro`, `mlops release`); the image workflow then builds "
            "the release's image and records it",
        )
    assert serving.bundle_id is not None and serving.bundle_sha256 is not None
    return ImageRecord(
        spec.name,
        serving.release,
        serving.bundle_id,
        serving.bundle_sha256,
        image.bundle,
        f"{image.repository}@{digest}",
    )


def write_image(root: Path, image: ImageRecord) -> None:
    """Write deploy/images/<target>.json atomically (checked by the parser first)."""
    text = dumps_json(image.to_dict())
    parse_image(text, str(image_record_path(image.target)), image.target)
    path = root / image_record_path(image.target)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
