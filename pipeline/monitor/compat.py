"""Whether windows may be judged against the monitored bundle at all.

Monitoring compares traffic with the release it judges: that bundle's own drift reference, its
test-split predictions and its test metrics. That comparison only means something when the
traffic and the project belong to the same line of releases as the bundle: a change of input
signature or task starts a new line (DESIGN.md), and until the new line is released the
monitored bundle is still the old one. Two checks, both explained rather than crashed on:

* :func:`refusal` - the project as declared (task, target, feature columns and their kinds)
  against the bundle, and whether the bundle carries a drift reference at all (bundle format 2
  on). A refusal means no window is judged: the `monitor` stage writes a report saying so (the
  graph stays usable, so the new champion can be gated and released), `mlops monitor --input`
  exits 2.
* :func:`window_problem` - one window's columns and predictions against the bundle: traffic
  scored by another line (say, windows an older release logged before a new line was released)
  is listed as not judged instead of being compared with a reference it does not belong to.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import comparability
from pipeline.monitor.monitored_bundle import BundleInfo
from pipeline.settings import DatasetSpec
from pipeline.values import canonical_category
from pipeline.windows import PREDICTION, RESERVED

if TYPE_CHECKING:
    import pandas as pd


MAX_LISTED = 8  # column names listed per difference


@dataclass(frozen=True)
class Refusal:
    """Why no window is judged against the monitored bundle."""

    reason: str  # one sentence naming the release and the bundle
    differences: tuple[str, ...]  # what differs, one entry per aspect
    hint: str

    @property
    def message(self) -> str:
        return self.reason + (": " + "; ".join(self.differences) if self.differences else "")

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "differences": list(self.differences), "hint": self.hint}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def differences(bundle: BundleInfo, task: str, dataset: DatasetSpec) -> list[str]:
    """What differs between the bundle's line and the project's declared one (empty when they
    are the same line), by the rule the deploy gate applies (`pipeline.comparability`): task,
    target and the input fields with their types."""
    project = {
        "task": task,
        "target": dataset.target,
        "inputs": {c.name: c.type for c in dataset.features},
    }
    released = {
        "task": bundle.task,
        "target": bundle.target_column,
        "inputs": bundle.field_types(),
    }
    return comparability.differences(project, released)


def hint(bundle: BundleInfo) -> str:
    if bundle.source == "released":
        return (
            "a change of input signature or task starts a new line of releases: release it "
            "(`dvc repro`, then `mlops release`), or set monitor.target to a target serving "
            "this line (conf/monitor/)"
        )
    return "the champion's bundle is stale: run `dvc repro`"


def refusal(bundle: BundleInfo, task: str, dataset: DatasetSpec) -> Refusal | None:
    """Why windows cannot be judged against `bundle` in this project, or None when they can."""
    if not bundle.has_reference:
        return Refusal(
            f"{bundle.label} carries no drift reference (bundle format {bundle.format}; "
            "bundles carry their training data's reference from format 2 on)",
            (),
            "re-release the model: `dvc repro` packages it with its reference (a new bundle "
            "id), then `mlops release`",
        )
    found = differences(bundle, task, dataset)
    if not found:
        return None
    return Refusal(
        f"{bundle.label} has another input signature or task than the project declares",
        tuple(found),
        hint(bundle),
    )


def scored_by(release: str, bundle: BundleInfo) -> bool:
    """Whether a `__release__` value names the bundle (a release id `r0002-<bundle id>`, or the
    bare bundle id the simulator stamps)."""
    return release == bundle.id or release.endswith(f"-{bundle.id}")


def window_problem(
    frame: pd.DataFrame, bundle: BundleInfo, declared: Collection[str] = ()
) -> str | None:
    """Why a window's traffic does not fit the bundle's line, or None when it does.

    Another line's traffic both lacks some of the bundle's features and carries columns that
    neither the bundle takes nor the project declares (`declared`: ids, the target...; a column
    merely missing is a data problem, judged as all null), or holds predictions the bundle
    cannot make (non-numbers for a regressor, labels outside a classifier's classes).
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns if c not in RESERVED]
    missing = [f for f in bundle.features if f not in columns]
    extra = [c for c in columns if c not in bundle.features and c not in declared]
    if missing and extra:
        return (
            f"its columns are another signature's: it lacks {_names(missing)} and has "
            f"{_names(extra)}"
        )
    predictions = frame[PREDICTION].dropna()
    if bundle.task == "regression":
        numbers = pd.to_numeric(predictions, errors="coerce")
        if numbers.isna().any():
            return "its predictions are not numbers, and the bundle is a regressor"
    elif bundle.classes is not None:
        known = {canonical_category(c) for c in bundle.classes}
        unknown = sorted({canonical_category(v) for v in predictions.tolist()} - known, key=str)
        if unknown:
            return (
                f"its predictions include {_names([str(u) for u in unknown])}, not among the "
                f"bundle's classes {_names(sorted(map(str, known)))}"
            )
    return None
