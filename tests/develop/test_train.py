"""Training's results depend on declared inputs only, not on the machine running it."""

from __future__ import annotations

import dataclasses
import os

import pytest
from sklearn.datasets import load_breast_cancer
from threadpoolctl import threadpool_limits

from pipeline.config import load_config
from pipeline.develop.folds import make_cv
from pipeline.develop.train import fit_candidate
from pipeline.io import model_bytes
from tests.conftest import ROOT


def _fit(name: str) -> bytes:
    params = load_config(ROOT, hyperparameters=[name])
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame = frame.rename(columns={"target": params.dataset.target})
    frame = frame.iloc[:200].reset_index(drop=True)
    X = frame[[c.name for c in params.dataset.features]]
    y = frame[params.dataset.target]
    candidate = params.candidates[name]
    search = dataclasses.replace(candidate.search, method="none")
    small = {**candidate.hyperparameters, "max_iter": 20}
    train = dataclasses.replace(params.train, n_jobs=1, cv=2)
    fitted = fit_candidate(
        dataclasses.replace(candidate, search=search, hyperparameters=small),
        X,
        y,
        dataset=params.dataset,
        prep=params.preprocessing,
        task=params.task,
        primary=params.selection.metric,
        cv=make_cv(params.task, params.split, train),
        train=train,
    )
    return model_bytes(fitted.model)


def test_a_fit_is_the_same_bytes_whatever_threads_the_process_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Histogram boosting sums gradients with an OpenMP reduction whose partial sums follow
    the thread count, which scikit-learn takes from the machine's cores: a refit in a stage
    with two OpenMP threads wrote other model bytes than with one. Fits run single-threaded
    (`pipeline.develop.train.single_threaded`): the process's own thread settings change
    nothing."""
    name = "hist_gradient_boosting"
    with threadpool_limits(limits=1):
        one = _fit(name)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # honoured by scikit-learn beyond the cores
    with threadpool_limits(limits=3):
        three = _fit(name)
    assert os.environ["OMP_NUM_THREADS"] == "3"  # restored after the fits
    assert one == three
