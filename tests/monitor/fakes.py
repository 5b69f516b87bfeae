"""Small real artifacts for monitor unit tests: a bundle directory written in the documented
layout (bundle.json with sha256s, predictions.parquet, the drift reference in reference/),
windows and a Context."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.monitor.assess import Context, build_context
from pipeline.monitor.monitored_bundle import read_bundle
from pipeline.params import MonitorSettings
from pipeline.profile.layout import IN_BUNDLE, reference_files
from pipeline.profile.reference import build_reference
from pipeline.settings import DatasetSpec
from pipeline.windows import LABEL, PREDICTION, RELEASE, REQUEST_ID, TIME
from tests.monitor.conf import monitor_conf

CLASSES = ["no", "yes"]
KINDS = {"x": "numeric", "c": "categorical"}
TEST_METRICS = {"accuracy": 0.9, "balanced_accuracy": 0.9, "f1_macro": 0.9, "roc_auc": 0.95}


@functools.cache
def tiny_model() -> bytes:
    """A real (trivial) model file: verifying a bundle audits what its model file holds."""
    from sklearn.dummy import DummyClassifier

    from pipeline.io import model_bytes

    return model_bytes(DummyClassifier().fit([[0.0], [1.0]], CLASSES))


def write_bundle(
    directory: Path,
    predictions: Sequence[Any],
    *,
    task: str = "classification",
    test_metrics: Mapping[str, float] = TEST_METRICS,
    reference: pd.DataFrame | None = None,
    with_reference: bool = True,
) -> str:
    """A bundle directory as `package` writes it (format 2: with the drift reference of
    `reference`, by default `reference_frame()`; format 1, without one, when `with_reference`
    is false), with a trivial model file; returns its digest (sha256 of bundle.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.skops").write_bytes(tiny_model())
    pd.DataFrame({"row": np.arange(len(predictions)), "prediction": list(predictions)}).to_parquet(
        directory / "predictions.parquet"
    )
    signature = {
        "x-mlops": {"fields": [{"name": "x", "type": "float"}, {"name": "c", "type": "category"}]}
    }
    (directory / "signature.json").write_text(json.dumps(signature))
    names = ["model.skops", "signature.json", "predictions.parquet"]
    if with_reference:
        frame = reference_frame() if reference is None else reference
        build_reference(frame, KINDS).save(directory / IN_BUNDLE)
        names += [f"{IN_BUNDLE}/{name}" for name in reference_files(directory / IN_BUNDLE)]
    files = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in names}
    meta = {
        "format": 2 if with_reference else 1,
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
    committed = monitor_conf()
    base: dict[str, Any] = {
        "target": "local",
        "windows": {"by": "rows", "rows": 200, "span": "1d", "min_rows": 50},
        "drift": committed["drift"],
        "null_share": committed["null_share"],
        "report": committed["report"],
        "retention": committed["retention"],
        "prediction": {"method": "auto", "threshold": None},
        "performance": {
            "min_labelled": 30,
            "floors": {"balanced_accuracy": 0.8},
            "baseline": {},
            "max_drop": 0.1,
            "max_drop_by_metric": {},
        },
    }
    for key, value in monitor.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return {"task": "classification", "monitor": base, "dataset": dataset()}


def typed(params: Mapping[str, Any]) -> tuple[MonitorSettings, DatasetSpec]:
    """The monitor settings and the dataset of `params()`, as the stage reads them from the
    params tree (`engine.load_context`, `manual.monitor_files`)."""
    return MonitorSettings.from_params(params), DatasetSpec.from_params(params["dataset"])


def dataset(**columns: Any) -> dict[str, Any]:
    """The `dataset` params of the bundles written here (features x, c; target y); `columns`
    replace or add column declarations (None drops one)."""
    declared: dict[str, Any] = {
        "x": {"type": "float"},
        "c": {"type": "category", "categories": ["a", "b", "c"]},
        "y": {"type": "category", "categories": CLASSES},
    }
    declared.update(columns)
    return {
        "name": "fake",
        "source": {"kind": "file", "path": "data/external/fake.csv"},
        "target": "y",
        "key": None,
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {k: v for k, v in declared.items() if v is not None},
    }


def reference_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(0, 1, n), "c": rng.choice(np.array(["a", "b", "c"], dtype=object), n)}
    )


def context(tmp_path: Path, **monitor: Any) -> Context:
    """The champion's bundle (models/bundle) and the reference it carries, with these settings."""
    rng = np.random.default_rng(1)
    digest_dir = tmp_path / "bundle"
    write_bundle(digest_dir, rng.choice(CLASSES, 300, p=[0.7, 0.3]).tolist())
    settings = MonitorSettings.from_params(params(**monitor))
    bundle = read_bundle(digest_dir, source="champion", location="models/bundle")
    return build_context(settings, bundle.reference(), bundle)


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
