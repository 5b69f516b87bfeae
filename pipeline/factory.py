"""The one place where configuration becomes Python objects.

Config must never run arbitrary code, so `_target_` is resolved only against an explicit
allow-list of estimator classes (scikit-learn's, plus what the project registers with
:func:`register`). Nothing else in the project imports a class named by config. Hyperparameters
are checked with scikit-learn's own parameter constraints, one at a time so that every bad value
is reported, not just the first.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.errors import UnsafeTargetError

_CLASSIFIERS = {
    "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.RidgeClassifier",
    "sklearn.linear_model.SGDClassifier",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.AdaBoostClassifier",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.svm.SVC",
    "sklearn.svm.LinearSVC",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.neural_network.MLPClassifier",
    "sklearn.dummy.DummyClassifier",
}
_REGRESSORS = {
    "sklearn.linear_model.LinearRegression",
    "sklearn.linear_model.Ridge",
    "sklearn.linear_model.Lasso",
    "sklearn.linear_model.ElasticNet",
    "sklearn.linear_model.HuberRegressor",
    "sklearn.linear_model.PoissonRegressor",
    "sklearn.linear_model.SGDRegressor",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.AdaBoostRegressor",
    "sklearn.tree.DecisionTreeRegressor",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.svm.SVR",
    "sklearn.svm.LinearSVR",
    "sklearn.neural_network.MLPRegressor",
    "sklearn.dummy.DummyRegressor",
}
ALLOWED_TARGETS: dict[str, str] = {
    **dict.fromkeys(sorted(_CLASSIFIERS), "classification"),
    **dict.fromkeys(sorted(_REGRESSORS), "regression"),
}


def register(target: str, task: str, *, fitted_parts: Iterable[str] = ()) -> None:
    """Allow one more estimator class (e.g. a project's own); a reviewed code change, not config.

    Model files may then hold the class, and the `fitted_parts` it holds once fitted (classes,
    as `module.Class` of their defining module): the model loader trusts exact names only
    (`pipeline.model_types`)."""
    from pipeline import model_types

    if task not in {"classification", "regression"}:
        raise ValueError(f"task must be classification or regression, not {task!r}")
    ALLOWED_TARGETS[target] = task
    cls = resolve_target(target)
    model_types.trust(f"{cls.__module__}.{cls.__qualname__}", *fitted_parts)


def target_task(target: str) -> str:
    """The task an allowed target serves, or UnsafeTargetError for anything off the list."""
    try:
        return ALLOWED_TARGETS[target]
    except KeyError:
        raise UnsafeTargetError(
            f"_target_ {target!r} is not on the allow-list of estimators",
            hint="config cannot name arbitrary callables; `mlops targets` lists the allowed ones",
        ) from None


def resolve_target(target: str) -> type:
    """Import an allow-listed estimator class. Nothing off the list is ever imported."""
    target_task(target)
    module_name, _, class_name = target.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not isinstance(cls, type):
        raise UnsafeTargetError(f"_target_ {target!r} is not a class")
    return cls


def hyperparameters(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator keyword arguments of a candidate: every key without a leading underscore."""
    return {k: v for k, v in spec.items() if not k.startswith("_")}


def check_hyperparameters(target: str, params: Mapping[str, Any]) -> dict[str, str]:
    """{parameter: problem} for every unknown or invalid hyperparameter, using scikit-learn's
    `_parameter_constraints` (the source of its "The 'x' parameter of Y must be ..." errors)."""
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    cls = resolve_target(target)
    known = set(cls._get_param_names())  # type: ignore[attr-defined]
    constraints = getattr(cls, "_parameter_constraints", {})
    problems: dict[str, str] = {}
    for name, value in params.items():
        if name not in known:
            problems[name] = (
                f"{cls.__name__} has no hyperparameter {name!r}; expected one of "
                + ", ".join(sorted(known))
            )
            continue
        if name not in constraints:
            continue
        try:
            validate_parameter_constraints(
                {name: constraints[name]}, {name: value}, caller_name=cls.__name__
            )
        except InvalidParameterError as exc:
            problems[name] = str(exc)
    return problems


def build_estimator(spec: Mapping[str, Any]) -> Any:
    """Instantiate a candidate's estimator from its validated spec."""
    cls = resolve_target(str(spec["_target_"]))
    return cls(**hyperparameters(spec))


def build_distribution(spec: Mapping[str, Any]) -> Any:
    """A scipy distribution for randomized search; only these three are allowed."""
    from scipy import stats

    kind, low, high = spec["distribution"], spec["low"], spec["high"]
    if kind == "uniform":
        return stats.uniform(loc=low, scale=high - low)
    if kind == "loguniform":
        return stats.loguniform(low, high)
    if kind == "randint":
        return stats.randint(int(low), int(high) + 1)
    raise ValueError(f"unknown distribution {kind!r}")


def build_preprocessor(dataset: Any, prep: Any) -> Any:
    """The ColumnTransformer in front of every candidate, from the declared column types.

    `dataset` is a `DatasetSpec`, `prep` a `PreprocessingSpec`. Id and ignored columns are
    dropped; dates are expanded (or dropped) as declared.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    numeric = [c.name for c in dataset.features if c.is_numeric]
    categorical = [c.name for c in dataset.features if c.is_categorical]
    dates = [c.name for c in dataset.features if c.type == "datetime"]
    branches = []
    if numeric:
        branches.append(("numeric", Pipeline(_numeric_steps(prep.numeric)), numeric))
    if categorical:
        branches.append(
            ("categorical", Pipeline(_categorical_steps(prep.categorical)), categorical)
        )
    if dates and prep.datetime["action"] == "expand":
        from pipeline.transformers import DateTimeExpander

        steps = [
            (
                "expand",
                DateTimeExpander(tuple(prep.datetime["parts"])),
            )
        ]
        steps += _numeric_steps({**prep.numeric, "add_indicator": False})
        branches.append(("datetime", Pipeline(steps), dates))
    return ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)


def _impute_steps(spec: Mapping[str, Any], *, add_indicator: bool) -> list[tuple[str, Any]]:
    """The imputer a branch starts with (none for `impute: none`), filling with the spec's
    `fill_value` (conf/ declares it). Columns that are empty in training are kept (filled),
    so the output width never depends on the rows."""
    import numpy as np
    from sklearn.impute import SimpleImputer

    if spec["impute"] == "none":
        return []
    imputer = SimpleImputer(
        missing_values=np.nan,
        strategy=spec["impute"],
        fill_value=spec["fill_value"],
        add_indicator=add_indicator,
        keep_empty_features=True,
    )
    return [("impute", imputer)]


def _numeric_steps(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    steps = _impute_steps(spec, add_indicator=bool(spec["add_indicator"]))
    scalers = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
    if spec["scale"] != "none":
        steps.append(("scale", scalers[spec["scale"]]()))
    return steps or [("identity", "passthrough")]


def _categorical_steps(spec: Mapping[str, Any]) -> list[tuple[str, Any]]:
    import numpy as np
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    steps = _impute_steps(spec, add_indicator=False)
    unknown = spec["handle_unknown"]
    if spec["encode"] == "onehot":
        encoder: Any = OneHotEncoder(
            handle_unknown=unknown,
            min_frequency=spec["min_frequency"],
            max_categories=spec["max_categories"],
            sparse_output=False,
            dtype=np.float64,
        )
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value" if unknown != "error" else "error",
            unknown_value=-1 if unknown != "error" else None,
            encoded_missing_value=-2,
            min_frequency=spec["min_frequency"],
            max_categories=spec["max_categories"],
        )
    steps.append(("encode", encoder))
    return steps


def build_pipeline(candidate: Any, dataset: Any, prep: Any) -> Any:
    """Pipeline(preprocessing, estimator) for one `CandidateSpec`."""
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("preprocess", build_preprocessor(dataset, prep)),
            ("model", build_estimator(candidate.as_config())),
        ]
    )


def build_search(
    pipeline: Any,
    search: Any,
    *,
    cv: Any,
    scoring: Any,
    rank_by: str,
    n_jobs: int,
    seed: int,
    verbose: int,
) -> Any:
    """The declared search over `model__<param>`, ranked by `rank_by`; None for method none.

    Searches never refit: the caller cross-validates the chosen parameters on every metric and
    fits once at the end, so a refit here would be wasted work."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    if search.method == "none":
        return None
    space = {
        f"model__{name}": (build_distribution(v) if isinstance(v, Mapping) else list(v))
        for name, v in search.space.items()
    }
    common = {
        "cv": cv,
        "scoring": scoring,
        "n_jobs": n_jobs,
        "verbose": verbose,
        "error_score": "raise",
    }
    if search.method == "grid":
        return GridSearchCV(pipeline, space, refit=False, **common)
    if search.method == "random":
        return RandomizedSearchCV(
            pipeline, space, n_iter=search.n_iter, random_state=seed, refit=False, **common
        )
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

    # Successive halving ranks by one metric only; the others are recomputed on the winner.
    halving = {
        **common,
        "scoring": scoring[rank_by],
        "factor": search.factor,
        "random_state": seed,
        "refit": False,
    }
    if search.method == "halving_grid":
        return HalvingGridSearchCV(pipeline, space, **halving)
    return HalvingRandomSearchCV(pipeline, space, n_candidates=search.n_iter, **halving)
