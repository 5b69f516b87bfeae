"""The baseline for bench_pipeline.py: the same scikit-learn work as the default `dvc repro`,
in one plain Python process: load the data, split it, run every candidate's declared search and
cross-validation, refit, score the test split. No DVC, no files, no validation."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from pipeline import metrics
from pipeline.coercion import coerce
from pipeline.develop.folds import make_cv
from pipeline.develop.ingest import load_bundled
from pipeline.develop.train import fit_candidate
from pipeline.settings import (
    DatasetSpec,
    PreprocessingSpec,
    SelectionSpec,
    SplitSpec,
    TrainSpec,
    candidates,
)
from pipeline.splits import assign_splits


def main(params_path: Path) -> None:
    params = yaml.safe_load(params_path.read_text())
    dataset = DatasetSpec.from_params(params["dataset"])
    split = SplitSpec.from_params(params["split"])
    train_spec = TrainSpec.from_params(params)
    prep = PreprocessingSpec.from_params(params["preprocessing"])
    rule = SelectionSpec.from_params(params["selection"])
    frame = coerce(load_bundled(dataset.source["loader"]), dataset)
    labels = assign_splits(frame, dataset, split)
    features = [c.name for c in dataset.features]
    train, test = frame[labels == "train"], frame[labels == "test"]
    for cand in candidates(params):
        fitted = fit_candidate(
            cand,
            train[features],
            train[dataset.target],
            dataset=dataset,
            prep=prep,
            task=params["task"],
            primary=rule.metric,
            cv=make_cv(params["task"], split, train_spec),
            train=train_spec,
        )
        model = fitted.model
        proba = model.predict_proba(test[features])
        scores = metrics.compute(
            params["task"],
            test[dataset.target],
            model.predict(test[features]),
            proba,
            list(model.classes_),
        )
        print(cand.name, round(scores[rule.metric], 4))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
