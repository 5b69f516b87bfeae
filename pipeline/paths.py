"""Artifact paths that more than one stage (or a stage and a command) read or write: one owner,
so a layout change cannot leave a reader behind.

Labelled production rows for training (`mlops maintain --apply` writes them, `prepare` reads
them) live per dataset: `data/feedback/<dataset name>/<decision id>.parquet`. A project that
selects another dataset (a new line of releases) must not train on the old one's rows, and a
project that switches back finds its own again.
"""

from __future__ import annotations

from pathlib import Path

FEEDBACK_DIR = Path("data/feedback")  # DVC-tracked file by file; the folder itself is git's
# Production windows: `mlops logs snapshot` / `logs import` write them, `monitor` reads them.
PRODUCTION_DIR = Path("data/production")
# Gate decisions, reports/deploy/<target>.json: the deploy stages write them, `release`,
# `mlops summary` and the pull-request report read them.
GATE_REPORTS_DIR = Path("reports/deploy")
# Released bundles, one DVC-tracked directory per bundle id: deploy writes them, and every reader
# of a release record (deploy, monitoring, maintenance) finds a release's bundle there.
BUNDLES_DIR = Path("bundles")


def released_bundle(bundle_id: str) -> Path:
    """Where the bundle `bundle_id` of a release lives (relative to the project root)."""
    return BUNDLES_DIR / bundle_id


def feedback_dir(dataset: str) -> Path:
    """Where the labelled production rows of `dataset` (its declared name) are kept."""
    return FEEDBACK_DIR / dataset


def stray_feedback(root: Path) -> list[Path]:
    """Feedback files outside any dataset's folder (written before feedback was kept per
    dataset): no stage can tell which dataset they belong to."""
    return sorted((root / FEEDBACK_DIR).glob("*.parquet"))
