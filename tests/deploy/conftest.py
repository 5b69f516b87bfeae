"""Deploy fixtures: the reproduced template (tests/conftest.py) and a project with a release
history (a weak first release, then a better champion released over it)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_once, copy_built, dvc, mlops, pack, sh

# A deliberately weak champion: one depth-1 tree (roc_auc ~0.88 against ~0.99), which still
# meets the balanced-accuracy floor, so only the comparison with the incumbent can stop it.
STUMP = (
    "~candidates.logistic_regression",
    "~candidates.hist_gradient_boosting",
    "candidates.random_forest.max_depth=1",
    "candidates.random_forest.n_estimators=1",
)
TARGETS = ("local", "batch")


def ran(log: str) -> list[str]:
    """Stages that actually ran, from a `dvc repro` log."""
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


# Stages of the develop and deploy graph; other stages (monitoring) may also depend on the
# release records, and re-running them after a release is their design, not ours to assert.
OURS = ("ingest", "validate", "prepare", "train", "evaluate", "package", "deploy@")


def ran_ours(log: str) -> list[str]:
    """The develop/deploy stages that ran, sorted."""
    return sorted(s for s in ran(log) if s.startswith(OURS))


def report(project: Path, target: str) -> dict[str, Any]:
    return json.loads((project / "reports/deploy" / f"{target}.json").read_text())


def run_stage(project: Path, module: str, *args: str) -> None:
    """A stage's module run by its dvc.yaml command (`python -m pipeline.run MODULE ARGS`), as
    `dvc repro` runs it but without DVC's checks: forked from the session's warm stage runner
    (the gate then forks its smoke test from it too), not a new interpreter importing pandas
    and scikit-learn."""
    sh([sys.executable, "-m", "pipeline.run", module, *args], project)


def gate(project: Path, target: str = "local") -> dict[str, Any]:
    """Run the gate stage `deploy@<target>` (see `run_stage`); its report."""
    run_stage(project, "pipeline.deploy.stage", target)
    return report(project, target)


def record(project: Path, target: str) -> dict[str, Any]:
    return json.loads((project / "deploy" / f"{target}.json").read_text())


def tree_digests(project: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under `folders` (hidden files included)."""
    out = {}
    for folder in folders:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(project))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def commit(project: Path, message: str) -> None:
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "--allow-empty", "-m", message], project)


@pytest.fixture(scope="session")
def history(
    template_project: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Path:
    """r0001: the stump (first release, absolute gates only); r0002: the template's champion,
    proposed because it beats the stump, and released; committed (not re-reproduced since).
    Built once per session and shared by xdist workers (`build_once`)."""
    return build_once(
        "history-project",
        lambda project: _build_history(template_project, project),
        tmp_path_factory,
        worker_id,
    )


def _build_history(template: Path, project: Path) -> None:
    copy_built(template, project)
    mlops("compose", *STUMP, cwd=project)
    dvc("repro", cwd=project)
    mlops("release", cwd=project)
    commit(project, "release the stump")
    mlops("compose", cwd=project)
    dvc("repro", cwd=project)
    for target in TARGETS:  # kept for the test that reads how r0002 was proposed
        shutil.copy(project / f"reports/deploy/{target}.json", project / f"proposal-{target}.json")
    mlops("release", cwd=project)
    commit(project, "release the champion")
    pack(project)


@pytest.fixture
def history_copy(history: Path, tmp_path: Path) -> Iterator[Path]:
    yield copy_built(history, tmp_path / "project")


WEAK_FEATURE = "mean_concave_points"


def fabricate_release(project: Path, target: str = "local") -> str:
    """Release a weaker model the way `mlops release` would (bundles/<id>/ tracked with
    `dvc add`, deploy/<target>.json), without training it through the graph: logistic
    regression on one feature (roc_auc ~0.97 against the champion's ~0.99, still above the
    floors). Returns the release id, r0001-<bundle id>."""
    import pandas as pd
    from sklearn import __version__ as sklearn_version
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipeline import metrics
    from pipeline.bundle_format import PREDICTIONS, write_manifest
    from pipeline.config import load_params
    from pipeline.deploy import scoring
    from pipeline.deploy.signature import Signature
    from pipeline.io import atomic_write_text, dumps_json, model_bytes, sha256_file
    from pipeline.settings import DatasetSpec
    from pipeline.tables import write_parquet

    dataset = DatasetSpec.from_params(load_params(project)["dataset"])
    features = [c.name for c in dataset.features]
    train = pd.read_parquet(project / "data/prepared/train.parquet")
    test = pd.read_parquet(project / "data/prepared/test.parquet")
    model = make_pipeline(
        ColumnTransformer([("one", StandardScaler(), [WEAK_FEATURE])]), LogisticRegression()
    ).fit(train[features], train[dataset.target])
    classes = [str(c) for c in model.classes_]
    pred, proba = scoring.predict(model, test[features], "classification")
    tmp = project / "weak-bundle"
    tmp.mkdir()
    (tmp / "model.skops").write_bytes(model_bytes(model))
    signature = Signature.build(dataset, train, "classification", classes)
    atomic_write_text(tmp / "signature.json", dumps_json(signature.to_dict()))
    write_parquet(
        scoring.predictions_frame(pred, proba, classes, rows=range(len(test))), tmp / PREDICTIONS
    )
    meta = {
        "model": {
            "name": "weak",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "hyperparameters": {},
            "task": "classification",
            "classes": classes,
            "target": dataset.target,
            "features": features,
        },
        "metrics": {
            "test": metrics.compute("classification", test[dataset.target], pred, proba, classes),
            "cv": {},
        },
        "data": {"test_sha256": sha256_file(project / "data/prepared/test.parquet")},
        "versions": {"scikit-learn": sklearn_version},
    }
    digest = write_manifest(tmp, meta)
    bundle_id = digest[:16]
    tmp.rename(project / "bundles" / bundle_id)
    dvc("add", "--quiet", f"bundles/{bundle_id}", cwd=project)
    release = f"r0001-{bundle_id}"
    (project / "deploy" / f"{target}.json").write_text(
        dumps_json(
            {
                "target": target,
                "release": release,
                "parent": None,
                "pinned": None,
                "bundle": {"id": bundle_id, "sha256": digest, "path": f"bundles/{bundle_id}"},
                "model": {"name": "weak"},
            }
        )
    )
    commit(project, f"release {release} (fabricated)")
    return release
