"""Typed views of the validated params, so stage code never handles raw dicts or DictConfigs.

Each dataclass is built from a section of params.yaml *after* validation, so construction here
does no checking of its own: the JSON Schemas and `pipeline.validation` are the single source of
what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.values import canonical_category

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


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    role: str = "feature"  # feature | id | ignore | target
    nullable: bool = False
    min: float | str | None = None
    max: float | str | None = None
    categories: tuple[str, ...] | None = None
    description: str = ""
    personal: bool = False  # personal data: redacted by the service before it is logged

    @property
    def is_numeric(self) -> bool:
        return self.type in ("float", "int")

    @property
    def is_categorical(self) -> bool:
        return self.type in ("category", "bool")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: Mapping[str, Any]
    target: str
    key: str | None
    missing_target: str
    extra_columns: str
    columns: tuple[ColumnSpec, ...]
    description: str = ""

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> DatasetSpec:
        columns = []
        for name, spec in data["columns"].items():
            cats = spec.get("categories")
            role = "target" if name == data["target"] else spec.get("role", "feature")
            columns.append(
                ColumnSpec(
                    name=name,
                    type=spec["type"],
                    role=role,
                    nullable=bool(spec.get("nullable", False)),
                    min=spec.get("min"),
                    max=spec.get("max"),
                    categories=None if cats is None else tuple(canonical_category(c) for c in cats),
                    description=spec.get("description", ""),
                    personal=bool(spec.get("personal", False)),
                )
            )
        return cls(
            name=data["name"],
            source=dict(data["source"]),
            target=data["target"],
            key=data.get("key"),
            missing_target=data["missing_target"],
            extra_columns=data["extra_columns"],
            columns=tuple(columns),
            description=data.get("description", ""),
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


@dataclass(frozen=True)
class SplitSpec:
    method: str
    salt: str
    test_size: float = 0.0
    pool_size: float = 0.0
    group_column: str | None = None
    time_column: str | None = None
    test_from: str | None = None
    pool_from: str | None = None

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> SplitSpec:
        return cls(**{k: v for k, v in data.items()})


@dataclass(frozen=True)
class PreprocessingSpec:
    numeric: Mapping[str, Any]
    categorical: Mapping[str, Any]
    datetime: Mapping[str, Any]
    id: Mapping[str, Any]

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> PreprocessingSpec:
        return cls(**{k: dict(v) for k, v in data.items()})


@dataclass(frozen=True)
class SearchSpec:
    method: str = "none"
    space: Mapping[str, Any] = field(default_factory=dict)
    n_iter: int = 10
    factor: float = 3.0

    @classmethod
    def from_params(cls, data: Mapping[str, Any] | None) -> SearchSpec:
        data = dict(data or {})
        data["space"] = dict(data.get("space") or {})
        return cls(**data)


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    target: str
    hyperparameters: Mapping[str, Any]
    search: SearchSpec
    order: int  # position in `candidates`: the declared order

    @classmethod
    def from_params(cls, name: str, data: Mapping[str, Any], order: int) -> CandidateSpec:
        return cls(
            name=name,
            target=data["_target_"],
            hyperparameters={k: v for k, v in data.items() if not k.startswith("_")},
            search=SearchSpec.from_params(data.get("_search_")),
            order=order,
        )

    def as_config(self) -> dict[str, Any]:
        return {"_target_": self.target, **self.hyperparameters}


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class BaselineSpec:
    """The trivial model every candidate must beat: scikit-learn's DummyClassifier or
    DummyRegressor with `strategy`, and by how much on which metrics (`beat`)."""

    strategy: str
    beat: Mapping[str, Amount]

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> BaselineSpec:
        beat = {k: Amount.parse(v) for k, v in (data.get("beat") or {}).items()}
        return cls(strategy=data["strategy"], beat=beat)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
