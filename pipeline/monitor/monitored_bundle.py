"""The monitored bundle: which bundle a target's monitoring judges against, and what monitoring
reads from it (monitoring never imports the deploy layer).

The bundle format is the foundation `pipeline.bundle_format` (deploy reads and writes it through
the same module): `bundle.json` with the sha256 of every other file (its own sha256 is the
bundle digest), the offline predictions on the test split and, from bundle format 2 on,
`reference/`: the drift reference summarised from the bundle's own training split
(`pipeline.profile.reference`), which monitoring compares traffic with. `deploy/<target>.json`
records the released bundle, read with the one parser every reader uses
(`pipeline.release_record`); before any release (`"release": null`) monitoring falls back to
the champion's bundle in `models/bundle/`.

Every file is checked against its recorded sha256 before use, and a released bundle against the
digest in `deploy/<target>.json`: that digest covers every file, which is why the `monitor` stage
may depend on `deploy/<target>.json` alone for the released bundle's content.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import bundle_format
from pipeline.bundle_format import MODEL, PREDICTION, PREDICTIONS, REFERENCE, SIGNATURE
from pipeline.errors import ArtifactError
from pipeline.io import read_json
from pipeline.paths import CHAMPION_BUNDLE, release_path, released_bundle
from pipeline.release_record import read_record

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.profile.reference import Reference


@dataclass(frozen=True)
class BundleInfo:
    """A verified bundle: where it is, which release it is, what it was tested at."""

    path: Path
    digest: str
    meta: dict[str, Any]
    source: str  # "released" (deploy/<target>.json) or "champion" (models/bundle, unreleased)
    location: str = ""  # the path as recorded (relative to the project root), for reports
    release: str | None = None  # the release id when released (deploy/<target>.json)
    target: str | None = None  # the deployment target it was found through
    # a running rollout beside the release (deploy/<target>.json): monitoring keeps judging the
    # stable release; the reports say a candidate serves part of the traffic (canary) or scores
    # it in the shadow, and where its own analysis is (`mlops rollout analyze`)
    rollout: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return bundle_format.bundle_id(self.digest)

    @property
    def format(self) -> int | None:
        value = self.meta.get("format")
        return value if isinstance(value, int) else None

    @property
    def label(self) -> str:
        """What is judged, in words, for every report: `release r0002-abc... (bundle abc...,
        target local)`, or the unreleased champion's bundle."""
        if self.source == "released":
            return f"release {self.release} (bundle {self.id}, target {self.target})"
        where = f", target {self.target} has no release yet" if self.target else ""
        return f"the unreleased champion's bundle {self.id} ({self.location}{where})"

    @property
    def target_column(self) -> str:
        return str(self.meta["model"].get("target"))

    @property
    def has_reference(self) -> bool:
        """Whether the bundle carries its drift reference (bundle format 2 on), digest-checked
        with the rest of the bundle."""
        return bundle_format.has_reference(self.meta)

    def reference(self) -> Reference:
        """The drift reference built from this bundle's own training split."""
        from pipeline.profile.reference import Reference

        if not self.has_reference:
            raise ArtifactError(
                f"{self.location}: {self.label} carries no drift reference "
                f"(bundle format {self.format})",
                hint="re-release it: `dvc repro` builds a bundle with its reference, "
                "then `mlops release`",
            )
        return Reference.load(self.path / REFERENCE)

    @property
    def task(self) -> str:
        return str(self.meta["model"]["task"])

    @property
    def classes(self) -> list[str] | None:
        classes = self.meta["model"].get("classes")
        return None if classes is None else [str(c) for c in classes]

    @property
    def features(self) -> list[str]:
        return [str(f) for f in self.meta["model"]["features"]]

    def field_types(self) -> dict[str, str]:
        """{feature: declared type} from the bundle's own input signature (verified with the
        bundle): how window values are read, by `pipeline.values`' rules, before comparing."""
        fields = read_json(self.path / SIGNATURE)["x-mlops"]["fields"]
        return {str(f["name"]): str(f["type"]) for f in fields}

    @property
    def test_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.meta["metrics"]["test"].items()}

    def reference_predictions(self) -> pd.Series:
        """The offline predictions on the test split: the reference for prediction drift."""
        import pandas as pd

        path = self.path / PREDICTIONS
        frame = pd.read_parquet(path, columns=[PREDICTION])
        return frame[PREDICTION]

    def load_model(self) -> Any:
        """The bundle's model, loaded safely (skops, trusted types only, sha256 checked)."""
        from pipeline.io import load_model

        return load_model(self.path / MODEL, self.meta["files"][MODEL])


def read_bundle(
    directory: Path,
    expected_digest: str | None = None,
    source: str = "",
    location: str = "",
    *,
    release: str | None = None,
    target: str | None = None,
) -> BundleInfo:
    """Verify a bundle directory (manifest digest and every file's sha256) and read its manifest."""
    digest, meta = bundle_format.verify(directory, expected_digest)
    return BundleInfo(
        directory, digest, meta, source, location or directory.as_posix(), release, target
    )


def monitored_bundle(root: Path, target: str) -> BundleInfo:
    """The bundle released to `target` (deploy/<target>.json), else the champion's bundle."""
    record_path = root / release_path(target)
    if not record_path.is_file():
        raise ArtifactError(
            f"{release_path(target)} does not exist; monitor.target names no deployment target",
            hint="set monitor.target to a key of deploy.targets (conf/monitor/)",
        )
    record = read_record(record_path, target)
    if record.release is None:
        return read_bundle(
            root / CHAMPION_BUNDLE,
            source="champion",
            location=CHAMPION_BUNDLE.as_posix(),
            target=target,
        )
    path = released_bundle(str(record.bundle_id))  # what bundle.path says (check_record)
    info = read_bundle(
        root / path,
        record.bundle_sha256,
        source="released",
        location=path.as_posix(),
        release=record.release,
        target=target,
    )
    running = record.running_rollout
    if running is None:
        return info
    last = running.decisions[-1]
    rollout = {
        "strategy": running.strategy,
        "candidate": running.candidate.release,
        "step": running.step,
        "steps": len(running.steps),
        "weight": running.weight,
        "last_decision": last.get("summary") or f"{last['action']} by {last['by']}",
    }
    return replace(info, rollout=rollout)
