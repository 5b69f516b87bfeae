"""The model loader's exact trusted list cannot fall behind the factory: every allow-listed
estimator, fitted with the project's preprocessing (and with the hyperparameters that change
what a fitted model holds), and every preprocessing option, is written and loaded back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline import factory, model_types, values
from pipeline.errors import ArtifactError
from pipeline.io import load_model, model_bytes, save_model
from pipeline.settings import CandidateSpec, DatasetSpec, PreprocessingSpec

ROWS = 120
COLUMNS = {
    "num": {"type": "float", "nullable": True},
    "count": {"type": "int"},
    "plan": {"type": "category", "categories": ["a", "b", "c"], "nullable": True},
    "flag": {"type": "bool"},
    "when": {"type": "datetime"},
}
DEFAULT_PREP = {
    "numeric": {"impute": "median", "fill_value": 0, "add_indicator": False, "scale": "standard"},
    "categorical": {
        "impute": "most_frequent",
        "fill_value": "missing",
        "encode": "onehot",
        "handle_unknown": "ignore",
        "min_frequency": None,
        "max_categories": None,
    },
    "datetime": {"action": "expand", "parts": ["year", "month", "day_of_week"]},
    "id": {"action": "drop"},
}

# Hyperparameters that change which classes a fitted model holds (losses, links, search trees,
# distance metrics, optimisers, early-stopping state, initial estimators).
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "GradientBoostingClassifier": [{}, {"loss": "exponential"}, {"init": "zero"}],
    "GradientBoostingRegressor": [
        {"loss": loss} for loss in ("squared_error", "absolute_error", "huber", "quantile")
    ],
    "HistGradientBoostingClassifier": [{}, {"early_stopping": True}, {"class_weight": "balanced"}],
    "HistGradientBoostingRegressor": [
        *({"loss": loss} for loss in ("squared_error", "absolute_error", "gamma", "poisson")),
        {"loss": "quantile", "quantile": 0.5},
        {"early_stopping": True},
    ],
    "SGDClassifier": [
        {"loss": loss}
        for loss in (
            "hinge",
            "log_loss",
            "modified_huber",
            "squared_hinge",
            "perceptron",
            "squared_error",
            "huber",
            "epsilon_insensitive",
            "squared_epsilon_insensitive",
        )
    ]
    + [{"early_stopping": True}, {"average": True}],
    "SGDRegressor": [
        {"loss": loss}
        for loss in ("squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive")
    ],
    "KNeighborsClassifier": [
        {"algorithm": "ball_tree"},
        {"algorithm": "kd_tree"},
        {"algorithm": "brute"},
        {"metric": "manhattan"},
        {"metric": "chebyshev"},
        {"p": 3},
    ],
    "KNeighborsRegressor": [{}, {"algorithm": "ball_tree"}],
    "MLPClassifier": [{"solver": "adam"}, {"solver": "sgd"}, {"solver": "lbfgs"}],
    "MLPRegressor": [{"solver": "adam"}, {"solver": "sgd"}, {"early_stopping": True}],
    "RandomForestClassifier": [{}, {"oob_score": True, "class_weight": "balanced_subsample"}],
    "RandomForestRegressor": [{}, {"oob_score": True}],
    "ExtraTreesClassifier": [{}, {"bootstrap": True, "oob_score": True}],
    "SVC": [{}, {"kernel": "linear"}],
    "LogisticRegression": [{}, {"solver": "newton-cholesky"}, {"solver": "saga"}],
    "DummyClassifier": [
        {"strategy": s, "random_state": 0} for s in ("prior", "stratified", "uniform")
    ],
    "DummyRegressor": [{"strategy": "median"}, {"strategy": "quantile", "quantile": 0.5}],
}
SMALL = {"n_estimators": 3}  # where an estimator has it; keeps fits quick


def frame(seed: int = 0) -> pd.DataFrame:
    """A model frame with every column kind the signature knows, missing values included."""
    rng = np.random.default_rng(seed)
    raw = {
        "num": np.where(rng.random(ROWS) < 0.1, np.nan, rng.normal(size=ROWS)),
        "count": rng.integers(0, 10, ROWS).astype(float),
        "plan": np.where(rng.random(ROWS) < 0.1, None, rng.choice(["a", "b", "c"], ROWS)),
        "flag": rng.choice(["true", "false"], ROWS),
        "when": np.datetime64("2020-01-01T00:00", "ns")
        + rng.integers(0, 10**6, ROWS).astype("timedelta64[m]"),
    }
    kinds = {name: spec["type"] for name, spec in COLUMNS.items()}
    parsed = {k: values.parse_column(kinds[k], pd.Series(raw[k]))[0] for k in kinds}
    return values.model_frame(kinds, parsed)


X = frame()
_noise = np.random.default_rng(1).normal(size=ROWS)
TARGETS = {
    "binary": np.where(X["num"].fillna(0).to_numpy() + _noise > 0, "yes", "no"),
    "multiclass": np.array(["x", "y", "z"])[np.arange(ROWS) % 3],
    "regression": np.abs(X["count"].to_numpy() + _noise) + 0.5,  # positive: Poisson, gamma
}


def dataset() -> DatasetSpec:
    columns = {**COLUMNS, "y": {"type": "category"}}
    return DatasetSpec.from_params(
        {
            "name": "t",
            "source": {},
            "target": "y",
            "key": None,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": columns,
        }
    )


def fit(target: str, hyper: dict[str, Any], prep: dict[str, Any], y: np.ndarray) -> Any:
    cls = factory.resolve_target(target)
    known = cls._get_param_names()
    params = {k: v for k, v in SMALL.items() if k in known} | hyper
    if "HistGradientBoosting" in target:
        params.setdefault("max_iter", 5)
    candidate = CandidateSpec.from_params("m", {"_target_": target, **params}, 0)
    model = factory.build_pipeline(candidate, dataset(), PreprocessingSpec.from_params(prep))
    return model.fit(X, y)


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny fits: OpenMP threads only contend (histogram boosting took seconds, not ms)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def round_trip(model: Any, tmp_path: Path) -> None:
    """Written (the audit at save time passes), loaded back (the audit at load time passes),
    and the loaded model answers exactly as the fitted one."""
    digest = save_model(model, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops", digest)
    expected, got = model.predict(X), loaded.predict(X)
    assert (expected == got).all()


def test_the_estimator_list_is_the_factory_allow_list() -> None:
    defined = set()
    for target in factory.ALLOWED_TARGETS:
        cls = factory.resolve_target(target)
        defined.add(f"{cls.__module__}.{cls.__qualname__}")
    assert defined == set(model_types.ESTIMATORS)


def _cases() -> list[Any]:
    cases = []
    for target, task in sorted(factory.ALLOWED_TARGETS.items()):
        name = target.rpartition(".")[2]
        ys = ["binary", "multiclass"] if task == "classification" else ["regression"]
        for hyper in VARIANTS.get(name, [{}]):
            for y in ys:
                if hyper.get("loss") == "exponential" and y == "multiclass":
                    continue  # binary only
                label = f"{name}-{y}-" + ",".join(f"{k}={v}" for k, v in hyper.items())
                cases.append(pytest.param(target, hyper, y, id=label))
    return cases


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("target", "hyper", "y"), _cases())
def test_every_allow_listed_estimator_round_trips(
    target: str, hyper: dict[str, Any], y: str, tmp_path: Path
) -> None:
    round_trip(fit(target, hyper, DEFAULT_PREP, TARGETS[y]), tmp_path)


def _prep(**changes: dict[str, Any]) -> dict[str, Any]:
    return {key: {**value, **changes.get(key, {})} for key, value in DEFAULT_PREP.items()}


PREPROCESSING_OPTIONS = {
    **{
        f"numeric-impute-{v}": _prep(numeric={"impute": v})
        for v in ("mean", "median", "most_frequent", "constant", "none")
    },
    **{f"numeric-scale-{v}": _prep(numeric={"scale": v}) for v in ("robust", "minmax", "none")},
    "numeric-indicator": _prep(numeric={"add_indicator": True}),
    **{f"categorical-impute-{v}": _prep(categorical={"impute": v}) for v in ("constant", "none")},
    **{
        f"onehot-{v}": _prep(categorical={"handle_unknown": v, "min_frequency": 5})
        for v in ("infrequent_if_exist", "error")
    },
    "onehot-max-categories": _prep(categorical={"max_categories": 2}),
    **{
        f"ordinal-{v}": _prep(categorical={"encode": "ordinal", "handle_unknown": v})
        for v in ("ignore", "error")
    },
    "ordinal-infrequent": _prep(categorical={"encode": "ordinal", "min_frequency": 0.3}),
    "datetime-drop": _prep(datetime={"action": "drop"}),
    "datetime-every-part": _prep(
        datetime={"parts": ["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute"]}
    ),
}


@pytest.mark.parametrize(
    "prep", list(PREPROCESSING_OPTIONS.values()), ids=list(PREPROCESSING_OPTIONS)
)
def test_every_preprocessing_option_round_trips(prep: dict[str, Any], tmp_path: Path) -> None:
    # histogram boosting takes the missing values "impute: none" lets through
    model = fit("sklearn.ensemble.HistGradientBoostingClassifier", {}, prep, TARGETS["binary"])
    round_trip(model, tmp_path)


def test_a_fitted_model_holding_anything_else_is_not_written(tmp_path: Path) -> None:
    """A model holding a function (here a FunctionTransformer of numpy.log1p, which no factory
    option builds) fails when it is written, naming the types, not at every later load."""
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(np.log1p).fit(np.ones((3, 1)))
    with pytest.raises(ArtifactError) as caught:
        save_model(model, tmp_path / "model.skops")
    message = caught.value.render()
    assert "model.skops: the fitted model holds" in message
    assert "numpy.log1p" in message and "sklearn.preprocessing._function_transformer" in message
    assert not (tmp_path / "model.skops").exists()


def test_a_registered_estimator_is_trusted_with_its_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "ALLOWED_TARGETS", dict(factory.ALLOWED_TARGETS))
    monkeypatch.setattr(model_types, "_REGISTERED", set())
    from sklearn.linear_model import Perceptron

    data = model_bytes(Perceptron().fit(np.eye(4), [0, 1, 0, 1]))
    schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    name = "sklearn.linear_model._perceptron.Perceptron"
    assert model_types.refused(schema) == [f"{name} (ObjectNode)"]
    factory.register("sklearn.linear_model.Perceptron", "classification")
    assert model_types.refused(schema) == []
