"""Stage `train`: fit every declared candidate, with its declared search, on the train split.

Writes `models/candidates/<name>/model.skops` (byte-reproducible) and `candidate.json`
(cross-validated metrics, best parameters, size, digests; nothing measured from the clock) for
each key of `candidates`, and nothing else there.

One stage for all candidates, not one per candidate: DVC's cost per stage (a process, the
config and the data read again, and above all `dvc.lock` rewritten whole after every stage)
grew the graph by about a second a candidate. Per-candidate re-execution is kept another way:
each candidate's fit is kept in `models/kept` (a `persist: true` output, `pipeline.kept`)
under the digest of everything it depends on (`fit_key`: its own `candidates.<name>`, the
shared settings the stage declares, the train split's and the lock file's bytes, the library
versions its record names, the code that fits it), and reused while that digest holds. So
editing one candidate re-fits only that one, adding one fits only it, and removing one removes
its files; a reused fit is the same bytes a new one would be (the fit is a pure function of
that key). `rm -rf models/kept && dvc repro -f train` re-fits everything.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import kept, metrics
from pipeline.compute import on_cluster, training_pool
from pipeline.config import load_config
from pipeline.develop.folds import cv_summary, make_cv
from pipeline.errors import DataError
from pipeline.factory import build_pipeline, build_search
from pipeline.io import atomic_write_bytes, dumps_json, model_bytes, sha256_bytes, sha256_file
from pipeline.paths import (
    CANDIDATE_RECORD,
    CANDIDATES_DIR,
    LOCK_FILE,
    MODEL_FILE,
    TRAIN_KEPT,
    candidate_dir,
    split_path,
)
from pipeline.settings import (
    CandidateSpec,
    DatasetSpec,
    PreprocessingSpec,
    SplitSpec,
    TrainSpec,
)
from pipeline.stage import log, run
from pipeline.tables import read_table
from pipeline.threads import one_thread_variables

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.params import Params

VERSION = 1  # bump to discard every kept fit (a change of what a kept fit means)
# The params the stage reads besides `candidates` (dvc.yaml lists the same, and `candidates`):
# a candidate's fit depends on its own `candidates.<name>` and on all of these.
SHARED_PARAMS = (
    "task",
    "selection.metric",
    "dataset.target",
    "dataset.columns",
    "preprocessing",
    "split",
    "train",
    "project.seed",
)
# The modules (under pipeline/) whose code decides a fit's bytes: the stage's code deps in
# dvc.yaml (a test checks they agree).
CODE = (
    "develop/train.py",
    "develop/folds.py",
    "factory.py",
    "transformers.py",
    "model_types.py",
    "metrics.py",
    "settings.py",
    "io.py",
    "kept.py",
    "threads.py",
)
KEPT_FILES = (MODEL_FILE, CANDIDATE_RECORD)  # a candidate's folder, kept whole


@contextmanager
def single_threaded() -> Iterator[None]:
    """Every OpenMP and BLAS pool of this process at one thread, and the thread variables at 1
    for any worker started meanwhile (joblib's loky workers take them from this environment),
    restored on exit.

    Why: a fit's numbers depend on how many threads compute it. `HistGradientBoosting*` sums
    gradients with an OpenMP reduction whose partial sums follow the thread count, which
    scikit-learn takes from the machine's cores, so a refit in the stage's own process (two
    threads here) gave other model bytes than the same refit on one thread, and on another
    machine than on this one: a result depending on no declared input. The parallel folds
    already ran single-threaded (the fork server's workers, or joblib's when the jobs fill the
    cores); with this, so do the search, the cross-validation and the final refit wherever
    they run, and parallelism comes only from `train.n_jobs` (conf/config.yaml)."""
    from threadpoolctl import threadpool_limits

    with one_thread_variables(override=True), threadpool_limits(limits=1):
        yield


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

    `workers` (one of `pipeline.compute.training_pool`) is where the parallel fits of the search
    and the cross-validation run; the final fit runs here, outside it, so no fitted part of the
    model comes back through a worker (a Dask worker returns a copy, which skops would write
    with different object sharing: other bytes for the same numbers). Every fit runs
    single-threaded (`single_threaded`): the numbers do not depend on the cores."""
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


def fit_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """What every candidate's fit depends on besides its own spec: `SHARED_PARAMS` (from
    params.yaml as read, `data`), the train split's and the lock file's bytes (both named in
    its record), the library versions its record names and the code of `CODE`."""
    return {
        "code": kept.code_version(f"gitops-mlops/train-kept/{VERSION}", CODE),
        "params": {key: _lookup(data, key) for key in SHARED_PARAMS},
        "train_sha256": sha256_file(split_path("train")),
        "lock_sha256": sha256_file(LOCK_FILE) if LOCK_FILE.exists() else None,
        "versions": library_versions(),
    }


def fit_key(name: str, data: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """The digest of everything candidate `name`'s fit and record depend on: its own
    `candidates.<name>` and the `fit_context`. Two runs with the same key write the same
    bytes."""
    return kept.digest({**context, "name": name, "candidate": data["candidates"][name]})


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def main(argv: Sequence[str]) -> None:
    if argv:
        print("usage: python -m pipeline.develop.train  (fits every candidate)", file=sys.stderr)
        raise SystemExit(2)
    params = load_config()  # every candidate's hyperparameters checked, each error naming its key
    data = params.data  # the validated mapping, as the kept fits' keys digest it
    task, dataset, split, train = params.task, params.dataset, params.split, params.train
    frame = read_table(split_path("train"), "parquet")
    X, y = frame[[c.name for c in dataset.features]], frame[dataset.target]
    groups = frame[split.group_column] if split.method == "group" else None
    if task == "classification":
        check_classes(y, split, train)
    context = fit_context(data)
    store = kept.KeptFolders(TRAIN_KEPT)
    folders: dict[str, dict[str, bytes]] = {}
    fitted_names = []
    with training_pool(params.compute, train.n_jobs, len(frame)) as workers:
        for name, candidate in params.candidates.items():
            key = fit_key(name, data, context)
            files = _kept_fit(store, key, name)
            if files is not None:
                log(f"train {name}: kept fit reused ({key[:16]})")
            else:
                files = _fit(name, candidate, params, X, y, groups, len(frame), workers(), context)
                store.put(key, files)
                fitted_names.append(name)
            folders[name] = files
    for name, files in folders.items():
        for file, body in files.items():
            atomic_write_bytes(candidate_dir(name) / file, body)
    kept.prune_folder(CANDIDATES_DIR, folders)  # a removed candidate's files (outside DVC)
    pruned = store.prune()
    log(
        f"train: {len(fitted_names)} of {len(folders)} candidate(s) fitted"
        + (f" ({', '.join(fitted_names)})" if fitted_names else "")
        + f", {len(folders) - len(fitted_names)} kept fit(s) reused, {pruned} unused pruned"
    )


def _kept_fit(store: kept.KeptFolders, key: str, name: str) -> dict[str, bytes] | None:
    """The files of the fit kept under `key`, if whole and consistent (the record names this
    candidate and the model's digest); None to fit it again (and replace the entry)."""
    folder = store.get(key, KEPT_FILES)
    if folder is None:
        return None
    files = {file: (folder / file).read_bytes() for file in KEPT_FILES}
    try:
        record = json.loads(files[CANDIDATE_RECORD])
        whole = record["name"] == name and record["model"]["sha256"] == sha256_bytes(
            files[MODEL_FILE]
        )
    except (ValueError, KeyError, TypeError):
        whole = False
    if not whole:
        store.used.discard(key)
        return None
    return files


def _fit(
    name: str,
    candidate: CandidateSpec,
    params: Params,
    X: pd.DataFrame,
    y: pd.Series,
    groups: Any,
    rows: int,
    workers: AbstractContextManager[object],
    context: Mapping[str, Any],
) -> dict[str, bytes]:
    """Fit one candidate; its folder's files (model, record)."""
    task, train, metric = params.task, params.train, params.selection.metric
    log(
        f"train {name}: {candidate.target} on {rows} rows, "
        f"{candidate.search.method} search, {train.cv}-fold cv, n_jobs={train.n_jobs}"
        + (" on a Dask cluster" if on_cluster(params.compute, rows) else "")
    )
    fitted = fit_candidate(
        candidate,
        X,
        y,
        dataset=params.dataset,
        prep=params.preprocessing,
        task=task,
        primary=metric,
        cv=make_cv(task, params.split, train),
        train=train,
        groups=groups,
        workers=workers,
    )
    primary = fitted.cv[metric]
    shown = (
        "undefined on every fold"
        if primary["mean"] is None
        else f"{primary['mean']:.4f} ± {primary['std']:.4f}"
    )
    log(f"train {name}: cv {metric} {shown} ({fitted.n_fits} fits)")
    return candidate_files(name, candidate, fitted, task, context)


def candidate_files(
    name: str,
    candidate: CandidateSpec,
    fitted: Fitted,
    task: str,
    context: Mapping[str, Any],
) -> dict[str, bytes]:
    """A candidate's folder: the model file and its record (naming the digests and versions
    of `context`, its `fit_context`), as bytes."""
    data = model_bytes(fitted.model)
    record = {
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
            "train_sha256": context["train_sha256"],
            "lock_sha256": context["lock_sha256"],
        },
        "versions": context["versions"],
    }
    return {MODEL_FILE: data, CANDIDATE_RECORD: dumps_json(record).encode()}


if __name__ == "__main__":
    run(main)
