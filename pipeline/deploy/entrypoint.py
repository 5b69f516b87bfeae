"""Before `mlops serve` listens: make the declared bundles present and verified.

The container image (Dockerfile) runs `mlops serve --bundle baked|fetch`, and the same command
runs as a plain process on any machine, so what the image does at start is tested here without
a container runtime. The bundle mode is the image's build argument:

* `baked`: the released bundles were copied into the image at build time. Each declared bundle
  (the release in deploy/<target>.json and, during a rollout, its candidate) must be there with
  the digest the release record names; otherwise the command refuses to serve (exit 2), before
  it listens, rather than start a service whose /health reports a load error.
* `fetch`: the image holds the release record and the bundle's DVC pointer, not its bytes.
  Each declared bundle is pulled from the DVC remote and verified against the record by the
  reconciler's own step (`pipeline.deploy.sync.stage_bundle`, the one fetcher), and a digest
  mismatch refuses to serve. With a read-only root filesystem `bundles/` is a writable volume
  (the bundle cache), which hides the pointers the image put there: `pointers` names the
  read-only folder holding a copy of them, from which a missing pointer is restored first.

Without a mode `mlops serve` behaves as it always has: it serves what is on disk and reports a
missing or damaged bundle on /health (a development checkout that `mlops sync` keeps current).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.bundle_format import verify
from pipeline.deploy.sync import stage_bundle
from pipeline.errors import ArtifactError, ToolError
from pipeline.io import atomic_write_bytes
from pipeline.paths import bundle_pointer, release_path, released_bundle
from pipeline.release_record import ReleaseRecord, read_record

BAKED, FETCH = "baked", "fetch"
MODES = (BAKED, FETCH)


def declared(root: Path, target: str) -> list[ReleaseRecord]:
    """The releases deploy/<target>.json declares with a bundle: the release, and a running
    rollout's candidate (both are served)."""
    record = read_record(root / release_path(target), target)
    rollout = record.running_rollout
    found = [record] + ([] if rollout is None else [rollout.candidate])
    return [one for one in found if one.release is not None]


def restore_pointer(root: Path, record: ReleaseRecord, pointers: Path | None) -> bool:
    """Copy `bundles/<id>.dvc` from `pointers` when the bundle cache does not have it yet;
    whether it was copied. Missing in both places is an error naming both."""
    pointer = bundle_pointer(str(record.bundle_id))
    if (root / pointer).is_file():
        return False
    source = None if pointers is None else pointers / pointer.name
    if source is None or not source.is_file():
        where = pointer.as_posix() + ("" if source is None else f" or {source}")
        raise ArtifactError(
            f"{record.release}: no DVC pointer for bundle {record.bundle_id} ({where})",
            hint="build the image from a checkout that has the release's pointer "
            "(`mlops release` writes it beside deploy/<target>.json), or pass --pointers",
        )
    (root / pointer).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / pointer, source.read_bytes())
    return True


def check_expected(
    records: list[ReleaseRecord], target: str, release: str | None, sha256: str | None
) -> None:
    """The release (and bundle digest) the deployment expects the image to serve, when it says
    (a Kubernetes manifest sets MLOPS_RELEASE and MLOPS_BUNDLE_SHA256), must be one the image
    declares: an image of another release is refused rather than served under a wrong name."""
    if release is None and sha256 is None:
        return
    found = [r for r in records if release in (None, r.release)]
    found = [r for r in found if sha256 in (None, r.bundle_sha256)]
    if not found:
        have = ", ".join(f"{r.release} (bundle sha256 {r.bundle_sha256})" for r in records)
        want = " with bundle sha256 ".join(x for x in (release, sha256) if x is not None)
        raise ArtifactError(
            f"{target}: the deployment expects {want}; this image declares {have or 'no release'}",
            hint="the manifest and the image are of different releases: run the image "
            "workflow for the release and `mlops image record`, then render again",
        )


def prepare(
    root: Path,
    target: str,
    mode: str,
    *,
    dvc_remote: str | None = None,
    pointers: Path | None = None,
    expect_release: str | None = None,
    expect_sha256: str | None = None,
) -> list[str]:
    """Make every declared bundle of `target` present and verified (see the module docstring);
    returns what was done, one line each. Raises ArtifactError (exit 2) instead of serving a
    bundle that is missing or is not the bytes its release record names, or a release other
    than the one expected (`check_expected`)."""
    if mode not in MODES:
        raise ValueError(f"unknown bundle mode {mode!r}")  # argparse's choices keep it out
    records = declared(root, target)
    check_expected(records, target, expect_release, expect_sha256)
    done: list[str] = []
    for record in records:
        if mode == FETCH and restore_pointer(root, record, pointers):
            done.append(f"restored pointer {bundle_pointer(str(record.bundle_id))}")
        try:
            if mode == FETCH:
                done += stage_bundle(root, None, record, dvc_remote)
            else:
                verify(root / released_bundle(str(record.bundle_id)), record.bundle_sha256)
        except ToolError as exc:  # dvc pull failed: no remote, unreachable, missing object
            raise ToolError(
                f"{target}: cannot fetch {record.release}: {exc}",
                hint="configure the DVC remote the released bundles are pushed to (the "
                "project's .dvc/config, or a DVC config mounted at $DVC_GLOBAL_CONFIG_DIR), "
                "and pick it with --dvc-remote if it is not the default",
            ) from exc
        except ArtifactError as exc:
            raise ArtifactError(
                f"{target}: refusing to serve {record.release}: {exc}",
                hint=(
                    "the bytes pulled are not the released bundle: check that the DVC remote "
                    "(--dvc-remote) holds what `mlops release` and `dvc push` published"
                    if mode == FETCH
                    else "rebuild the image from a checkout where `mlops verify` passes"
                ),
            ) from exc
        done.append(f"verified {record.release} (bundle {record.bundle_id})")
    return done
