"""Small real artifacts for monitor unit tests: a bundle directory written in the documented
layout (bundle.json with sha256s, predictions.parquet), a reference, windows and a Context."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.monitor.assess import Context, build_context
from pipeline.monitor.bundles import read_bundle
from pipeline.monitor.settings import MonitorSettings
from pipeline.profile.reference import build_reference
from pipeline.windows import LABEL, PREDICTION, RELEASE, REQUEST_ID, TIME

CLASSES = ["no", "yes"]
TEST_METRICS = {"accuracy": 0.9, "balanced_accuracy": 0.9, "f1_macro": 0.9, "roc_auc": 0.95}


def write_bundle(
    directory: Path,
    predictions: Sequence[Any],
    *,
    task: str = "classification",
    test_metrics: Mapping[str, float] = TEST_METRICS,
) -> str:
    """A bundle directory as `package` writes it; returns its digest (sha256 of bundle.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.skops").write_bytes(b"not a model: monitor unit tests never load it")
    pd.DataFrame({"row": np.arange(len(predictions)), "prediction": list(predictions)}).to_parquet(
        directory / "predictions.parquet"
    )
    files = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("model.skops", "predictions.parquet")
    }
    meta = {
        "format": 1,
        "model": {
            "task": task,
            "classes": CLASSES if task == "classification" else None,
            "target": "y",
            "features": ["x", "c"],
        },
        "metrics": {"test": dict(test_metrics)},
        "files": files,
    }
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    (directory / "bundle.json").write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def params(**monitor: Any) -> dict[str, Any]:
    """The params slice MonitorSettings reads, with the committed defaults and overrides."""
    base: dict[str, Any] = {
        "target": "local",
        "windows": {"by": "rows", "rows": 200, "span": "1d", "min_rows": 50},
        "drift": {"mode": "exact", "drift_share": 0.5},
        "null_share": {"max_increase": 0.1},
        "prediction": {"method": "auto", "threshold": None},
        "performance": {
            "min_labelled": 30,
            "floors": {"balanced_accuracy": 0.8},
            "max_drop": 0.1,
            "max_drop_by_metric": {},
        },
    }
    for key, value in monitor.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return {"task": "classification", "monitor": base}


def reference_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(0, 1, n), "c": rng.choice(np.array(["a", "b", "c"], dtype=object), n)}
    )


def context(tmp_path: Path, **monitor: Any) -> Context:
    rng = np.random.default_rng(1)
    digest_dir = tmp_path / "bundle"
    write_bundle(digest_dir, rng.choice(CLASSES, 300, p=[0.7, 0.3]).tolist())
    reference = build_reference(reference_frame(), {"x": "numeric", "c": "categorical"})
    settings = MonitorSettings.from_params(params(**monitor))
    bundle = read_bundle(digest_dir, source="champion", location="models/bundle")
    return build_context(settings, reference, bundle)


def traffic(
    n: int = 200,
    *,
    seed: int = 5,
    start: str = "2025-03-01T00:00:00+00:00",
    shift: float = 0.0,
    correct: float = 0.9,
    labelled: float = 1.0,
    release: str | None = None,
) -> pd.DataFrame:
    """Scored traffic like the reference: `correct` share of labels equal the prediction."""
    rng = np.random.default_rng(seed)
    frame = reference_frame(n, seed)
    frame["x"] = frame["x"] + shift
    pred = rng.choice(np.array(CLASSES, dtype=object), n, p=[0.7, 0.3])
    right = rng.random(n) < correct
    label = np.where(right, pred, np.where(pred == "yes", "no", "yes")).astype(object)
    label[rng.random(n) >= labelled] = None
    frame[PREDICTION] = pred
    frame[LABEL] = label
    frame[TIME] = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * 60, unit="s")
    frame[REQUEST_ID] = [f"r{seed}-{i:05d}" for i in range(n)]
    frame[RELEASE] = release
    return frame
