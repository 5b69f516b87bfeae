"""Typed views of the validated develop sections (dataset, split, preprocessing, candidates,
selection, train), so stage code never handles raw dicts or DictConfigs.

Each dataclass is built from a section of params.yaml *after* validation, once, into the typed
params tree (`pipeline.params`, loaded by `pipeline.config.load_config`), so construction here
does no checking of its own: the JSON Schemas and `pipeline.validation` are the single source of
what is allowed. No field has a default: every value comes from conf/, and a key a declaration
may leave out takes the `default` its JSON Schema declares (`validation.schema_defaults`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ColumnType = Literal["float", "int", "bool", "category", "datetime"]
Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
MINIMIZED_METRICS = frozenset({"log_loss", "rmse", "mae"})
# The deterministic strategies of scikit-learn's dummy estimators, per task, for the trivial
# baseline (`pipeline.floors`); the random ones would add noise to a floor.
BASELINE_STRATEGIES = {
    "classification": ("prior", "most_frequent"),
    "regression": ("mean", "median"),
}


def metrics_for(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def metric_direction(metric: str) -> str:
    return "minimize" if metric in MINIMIZED_METRICS else "maximize"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: ColumnType
    role: str  # feature | id | ignore | target
    nullable: bool
    min: float | str | None
    max: float | str | None
    categories: tuple[str, ...] | None
    description: str
    personal: bool  # personal data: redacted by the service before it is logged

    @property
    def is_numeric(self) -> bool:
        return self.type in ("float", "int")

    @property
    def is_categorical(self) -> bool:
        return self.type in ("category", "bool")


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    name: str
    source: Mapping[str, Any]
    target: str
    key: str | None
    missing_target: str
    extra_columns: str
    columns: tuple[ColumnSpec, ...]
    description: str

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> DatasetSpec:
        from pipeline.validation import schema_defaults
        from pipeline.values import canonical_category  # numpy: only once a dataset is read

        data = {**schema_defaults("dataset"), **data}
        defaults = schema_defaults("dataset", "$defs", "column")
        columns = []
        for name, declared in data["columns"].items():
            spec = {**defaults, **declared}
            cats = spec["categories"]
            columns.append(
                ColumnSpec(
                    name=name,
                    type=spec["type"],
                    role="target" if name == data["target"] else spec["role"],
                    nullable=bool(spec["nullable"]),
                    min=spec["min"],
                    max=spec["max"],
                    categories=None if cats is None else tuple(canonical_category(c) for c in cats),
                    description=spec["description"],
                    personal=bool(spec["personal"]),
                )
            )
        return cls(
            name=data["name"],
            source=dict(data["source"]),
            target=data["target"],
            key=data["key"],
            missing_target=data["missing_target"],
            extra_columns=data["extra_columns"],
            columns=tuple(columns),
            description=data["description"],
        )

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def features(self) -> tuple[ColumnSpec, ...]:
        """Columns a model sees (before id columns are dropped and dates expanded)."""
        return tuple(c for c in self.columns if c.role == "feature")

    @property
    def target_column(self) -> ColumnSpec:
        return self.column(self.target)


@dataclass(frozen=True, slots=True)
class SplitSpec:
    """How rows are split. The keys a method does not use are None (the schema requires the
    ones it does: sizes for hash, stratified and group; a column for group and time; dates for
    time)."""

    method: str
    salt: str
    test_size: float | None
    pool_size: float | None
    group_column: str | None
    time_column: str | None
    test_from: str | None
    pool_from: str | None

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> SplitSpec:
        unused = dict.fromkeys(cls.__dataclass_fields__)  # a key the method does not use
        return cls(**{**unused, **data})


@dataclass(frozen=True, slots=True)
class PreprocessingSpec:
    numeric: Mapping[str, Any]
    categorical: Mapping[str, Any]
    datetime: Mapping[str, Any]
    id: Mapping[str, Any]

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> PreprocessingSpec:
        return cls(**{k: dict(v) for k, v in data.items()})


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """A candidate's declared search (`_search_`). What a method does not use is None: the
    schema requires `space` for every search, `n_iter` for the random ones and `factor` for
    successive halving."""

    method: str
    space: Mapping[str, Any]
    n_iter: int | None
    factor: float | None

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> SearchSpec:
        return cls(
            method=data["method"],
            space=dict(data.get("space") or {}),
            n_iter=data.get("n_iter"),
            factor=data.get("factor"),
        )


@dataclass(frozen=True, slots=True)
class CandidateSpec:
    name: str
    target: str
    hyperparameters: Mapping[str, Any]
    search: SearchSpec
    order: int  # position in `candidates`: the declared order

    @classmethod
    def from_params(cls, name: str, data: Mapping[str, Any], order: int) -> CandidateSpec:
        from pipeline.validation import schema_defaults

        data = {**schema_defaults("model"), **data}  # no `_search_`: no search
        return cls(
            name=name,
            target=data["_target_"],
            hyperparameters={k: v for k, v in data.items() if not k.startswith("_")},
            search=SearchSpec.from_params(data["_search_"]),
            order=order,
        )

    def as_config(self) -> dict[str, Any]:
        return {"_target_": self.target, **self.hyperparameters}


@dataclass(frozen=True, slots=True)
class Amount:
    """A tolerance or margin, declared in the metric's units or relative to a reference value.

    YAML: `{absolute: 0.01}` (in the metric's units), `{relative: 0.01}` (that share of the
    reference value's magnitude), or a plain number, which keeps its older meaning: absolute.
    What the reference is depends on the rule that uses the amount: the best candidate's score
    for a selection tolerance, the incumbent's score for a gate margin, the trivial baseline's
    score for a baseline floor. A relative amount follows the metric's scale: 1% of an RMSE of
    2.91 is 0.029, and of a ROC AUC of 0.99 it is 0.0099.
    """

    kind: Literal["absolute", "relative"]
    value: float

    @classmethod
    def parse(cls, spec: Any) -> Amount:
        if isinstance(spec, Mapping):  # validated: exactly one kind is not null
            ((kind, value),) = [(k, v) for k, v in spec.items() if v is not None]
            return cls(kind, float(value))
        return cls("absolute", float(spec))

    def resolve(self, reference: float | None) -> float:
        """The amount in the metric's units (a relative amount needs the reference value)."""
        if self.kind == "absolute":
            return self.value
        if reference is None:
            raise ValueError("a relative amount needs a reference value")
        return self.value * abs(reference)

    def declared(self) -> dict[str, float]:
        return {self.kind: self.value}

    def record(self, reference: float | None) -> dict[str, Any]:
        """What a report records: the declared rule, what it was relative to, the number."""
        return {
            "declared": self.declared(),
            "reference": reference if self.kind == "relative" else None,
            "resolved": self.resolve(reference),
        }

    def describe(self, reference: float | None, of: str = "the reference") -> str:
        """`0.01`, or `0.0291 (1% of the best score 2.9100)`, for reasons and reports."""
        if self.kind == "absolute":
            return f"{self.value:g}"
        resolved = self.resolve(reference)
        return f"{resolved:.4g} ({self.value * 100:g}% of {of} {abs(reference or 0.0):.4f})"


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """The trivial model every candidate must beat: scikit-learn's DummyClassifier or
    DummyRegressor with `strategy`, and by how much on which metrics (`beat`)."""

    strategy: str
    beat: Mapping[str, Amount]

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> BaselineSpec:
        beat = {k: Amount.parse(v) for k, v in (data.get("beat") or {}).items()}
        return cls(strategy=data["strategy"], beat=beat)


@dataclass(frozen=True, slots=True)
class SelectionSpec:
    metric: str
    direction: str
    scored_on: str
    floors: Mapping[str, float]
    tolerance: Amount
    tie_break: tuple[str, ...]
    baseline: BaselineSpec

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> SelectionSpec:
        return cls(
            metric=data["metric"],
            direction=data["direction"],
            scored_on=data["scored_on"],
            floors={k: float(v) for k, v in (data.get("floors") or {}).items()},
            tolerance=Amount.parse(data["tolerance"]),
            tie_break=tuple(data["tie_break"]),
            baseline=BaselineSpec.from_params(data["baseline"]),
        )


@dataclass(frozen=True, slots=True)
class TrainSpec:
    cv: int
    n_jobs: int
    verbose: int
    seed: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainSpec:
        train = params["train"]
        return cls(train["cv"], train["n_jobs"], train["verbose"], params["project"]["seed"])


def candidates(params: Mapping[str, Any]) -> list[CandidateSpec]:
    return [
        CandidateSpec.from_params(name, spec, i)
        for i, (name, spec) in enumerate(params["candidates"].items())
    ]
