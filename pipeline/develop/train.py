"""Stage `train@<candidate>`: fit one candidate, with its declared search, on the train split.

`python -m pipeline.develop.train NAME` reads only `candidates.NAME` (and the shared settings),
so editing one candidate re-runs only its own training and the selection. Writes
`models/candidates/NAME/model.skops` (byte-reproducible) and `candidate.json` (cross-validated
metrics, best parameters, size, digests; nothing measured from the clock).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import metrics
from pipeline.compute import on_cluster, training_workers
from pipeline.config import load_config
from pipeline.develop.folds import cv_summary, make_cv
from pipeline.errors import ConfigError, DataError
from pipeline.factory import build_pipeline, build_search
from pipeline.io import model_bytes, sha256_bytes, sha256_file, write_json
from pipeline.paths import CANDIDATE_RECORD, LOCK_FILE, MODEL_FILE, candidate_dir, split_path
from pipeline.run import single_threaded
from pipeline.settings import (
    CandidateSpec,
    DatasetSpec,
    PreprocessingSpec,
    SplitSpec,
    TrainSpec,
)
from pipeline.stage import log, run
from pipeline.tables import read_table

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Fitted:
    model: Any
    best_params: dict[str, Any]
    cv: dict[str, dict[str, Any]]  # metric -> mean, std, folds
    n_fits: int


def check_classes(y: pd.Series, split: SplitSpec, train: TrainSpec) -> None:
    """Refuse a train split the folds cannot score: a single class (nothing to tell apart), or,
    for stratified folds, a class with fewer rows than folds (a fold would lack it, and the
    model trained without it could not score it): a clear error instead of a traceback from
    inside cross-validation."""
    counts = y.value_counts(dropna=True)
    target = y.name
    if len(counts) < 2:
        only = ", ".join(f"{c!r} ({n} rows)" for c, n in counts.items()) or "no labelled row"
        raise DataError(
            f"{split_path('train')}: column {target!r}: the train split holds a single class "
            f"({only}); a classifier needs at least two",
            hint="check the data and dataset.target (conf/dataset/); `validate` refuses a "
            "single-class target in the raw data",
        )
    if split.method == "group":
        return  # grouped folds do not stratify; folds lacking a class are scored without it
    rare = [(c, int(n)) for c, n in counts.items() if n < train.cv]
    if rare:
        shown = ", ".join(f"{c!r} has {n}" for c, n in sorted(rare, key=lambda r: str(r[0])))
        raise DataError(
            f"{split_path('train')}: column {target!r}: too few rows of a class for "
            f"{train.cv}-fold cross-validation (train.cv): {shown} row(s) in the train split; "
            "every fold must hold each class",
            hint="collect more rows of the rare class, merge it into a related class in the "
            "data, or lower train.cv (conf/config.yaml)",
        )


def fit_candidate(
    candidate: CandidateSpec,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    dataset: DatasetSpec,
    prep: PreprocessingSpec,
    task: str,
    primary: str,
    cv: Any,
    train: TrainSpec,
    groups: Any = None,
    workers: AbstractContextManager[object] | None = None,
) -> Fitted:
    """Search (if declared), cross-validate every metric and refit on all training rows.

    `workers` (`pipeline.compute.training_workers`) is where the parallel fits of the search
    and the cross-validation run; the final fit runs here, outside it, so no fitted part of the
    model comes back through a worker (a Dask worker returns a copy, which skops would write
    with different object sharing: other bytes for the same numbers). Every fit runs
    single-threaded (`pipeline.run.single_threaded`): the numbers do not depend on the cores."""
    from sklearn.model_selection import cross_validate

    pipeline = build_pipeline(candidate, dataset, prep)
    scoring = metrics.scorers(task, n_classes=int(y.nunique()))
    search = build_search(
        pipeline,
        candidate.search,
        cv=cv,
        scoring=scoring,
        rank_by=primary,
        n_jobs=train.n_jobs,
        seed=train.seed,
        verbose=train.verbose,
    )
    with single_threaded(), workers or nullcontext():
        best, n_fits = _search(search, pipeline, X, y, cv, primary, groups)
        # One cross-validation of the chosen configuration scores every metric on the same
        # folds (successive halving ranks by one metric only, so this also fills in the others).
        scores = cross_validate(
            pipeline,
            X,
            y,
            cv=cv,
            scoring=scoring,
            groups=groups,
            n_jobs=train.n_jobs,
            verbose=max(0, train.verbose - 1),
            error_score="raise",
        )
    n_fits += cv.get_n_splits() + 1
    cv_metrics = {metric: cv_summary(metric, scores[f"test_{metric}"]) for metric in scoring}
    with single_threaded():  # the same numbers on every machine (`single_threaded`)
        pipeline.fit(X, y)
    return Fitted(pipeline, best, cv_metrics, n_fits)


def _search(
    search: Any, pipeline: Any, X: pd.DataFrame, y: pd.Series, cv: Any, primary: str, groups: Any
) -> tuple[dict[str, Any], int]:
    """Run the declared search (if any) and set its chosen parameters on `pipeline`; the
    chosen parameters and the number of fits."""
    if search is not None:
        search.fit(X, y, groups=groups)
        results = search.cv_results_
        rank = results.get(f"rank_test_{primary}", results.get("rank_test_score"))
        index = getattr(search, "best_index_", None)  # successive halving picks its own
        index = int(np.argmin(rank)) if index is None else int(index)
        chosen = results["params"][index]
        best = {k.removeprefix("model__"): _plain(v) for k, v in chosen.items()}
        pipeline.set_params(**{f"model__{k}": v for k, v in best.items()})
        n_fits = len(search.cv_results_["params"]) * cv.get_n_splits()
        return best, n_fits
    return {}, 0


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def count_parameters(estimator: Any) -> int:
    """Fitted parameters of the final estimator, a deterministic measure of model complexity:
    tree nodes for trees and ensembles, coefficients for linear models, array sizes otherwise."""
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    if hasattr(estimator, "tree_"):
        return int(estimator.tree_.node_count)
    if hasattr(estimator, "estimators_"):
        members = np.ravel(np.asarray(estimator.estimators_, dtype=object))
        return int(sum(count_parameters(m) for m in members))
    if hasattr(estimator, "_predictors"):
        return int(sum(len(p.nodes) for stage in estimator._predictors for p in stage))
    total = 0
    for name, value in vars(estimator).items():
        public = name.endswith("_") and not name.startswith("_")
        if public and isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            total += int(value.size)
    return total


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "skops"):
        out[dist] = version(dist)
    return out


def main(argv: Sequence[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m pipeline.develop.train CANDIDATE", file=sys.stderr)
        raise SystemExit(2)
    name = argv[0]
    # this candidate's hyperparameters only: every other one is checked by its own stage
    params = load_config(hyperparameters=[name])
    specs = params.candidates
    if name not in specs:
        raise ConfigError(
            f"params.yaml: candidates.{name}: no such candidate; declared: " + ", ".join(specs)
        )
    candidate, task = specs[name], params.task
    dataset, split, train, selection = params.dataset, params.split, params.train, params.selection
    frame = read_table(split_path("train"), "parquet")
    X, y = frame[[c.name for c in dataset.features]], frame[dataset.target]
    groups = frame[split.group_column] if split.method == "group" else None
    if task == "classification":
        check_classes(y, split, train)
    log(
        f"train {name}: {candidate.target} on {len(frame)} rows, "
        f"{candidate.search.method} search, {train.cv}-fold cv, n_jobs={train.n_jobs}"
        + (" on a Dask cluster" if on_cluster(params.compute, len(frame)) else "")
    )
    fitted = fit_candidate(
        candidate,
        X,
        y,
        dataset=dataset,
        prep=params.preprocessing,
        task=task,
        primary=selection.metric,
        cv=make_cv(task, split, train),
        train=train,
        groups=groups,
        workers=training_workers(params.compute, train.n_jobs, len(frame)),
    )
    write_candidate(name, candidate, fitted, task)
    primary = fitted.cv[selection.metric]
    shown = (
        "undefined on every fold"
        if primary["mean"] is None
        else f"{primary['mean']:.4f} ± {primary['std']:.4f}"
    )
    log(f"train {name}: cv {selection.metric} {shown} ({fitted.n_fits} fits)")


def write_candidate(name: str, candidate: CandidateSpec, fitted: Fitted, task: str) -> None:
    data = model_bytes(fitted.model)
    out = candidate_dir(name)
    from pipeline.io import atomic_write_bytes

    atomic_write_bytes(out / MODEL_FILE, data)
    write_json(
        out / CANDIDATE_RECORD,
        {
            "name": name,
            "task": task,
            "estimator": candidate.target,
            "hyperparameters": {**candidate.hyperparameters, **fitted.best_params},
            "search": {
                "method": candidate.search.method,
                "best_params": fitted.best_params,
                "fits": fitted.n_fits,
            },
            "cv": fitted.cv,
            "n_parameters": count_parameters(fitted.model),
            "model_size": len(data),
            "model": {"file": MODEL_FILE, "sha256": sha256_bytes(data)},
            "inputs": {
                "train_sha256": sha256_file(split_path("train")),
                "lock_sha256": sha256_file(LOCK_FILE) if LOCK_FILE.exists() else None,
            },
            "versions": library_versions(),
        },
    )


if __name__ == "__main__":
    run(main)
