"""Floors: the worst score a model may have, absolute or relative to a trivial baseline. One
definition for choosing a champion (develop's `evaluate`) and for the deployment gates
(deploy's `deploy@<target>`), which import it from here.

Why a baseline: an absolute floor means something only for one dataset. Balanced accuracy 0.85
is easy on breast cancer and out of reach for a five-class weather label, where any model
scores 0.41-0.48 and chance is 0.2. So the default floor is "beat a model that has learned
nothing by a declared amount": scikit-learn's `DummyClassifier` (strategy `prior`: always the
most frequent class, the class shares as probabilities; balanced accuracy 1 / number of
classes, ROC AUC 0.5) or `DummyRegressor` (strategy `mean`: RMSE about the target's standard
deviation, R² 0). The baseline is fitted on the same train split as the candidates and scored
the same way (the same cross-validation folds and scorers, the same test split), and its
fitted state is a few numbers (`Baseline`), recorded with the champion and in its bundle, so
the gate can rescore it on any test split.

Resolution: a baseline floor on metric m with amount a is the baseline's score on m made better
by a (`settings.Amount`: absolute in m's units, or relative to the baseline's score): for a
maximized metric `baseline + a`, for a minimized one (a ceiling) `baseline - a`. Absolute
floors (`selection.floors`, `gates.floors`) still apply as declared, beside the baseline ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.settings import MINIMIZED_METRICS, Amount

ESTIMATORS = {
    "classification": "sklearn.dummy.DummyClassifier",
    "regression": "sklearn.dummy.DummyRegressor",
}


# ------------------------------------------------------------------------------ the baseline
def estimator(task: str, strategy: str) -> Any:
    """An unfitted dummy estimator, for cross-validating the baseline like a candidate."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if task == "classification":
        return DummyClassifier(strategy=strategy)
    return DummyRegressor(strategy=strategy)


@dataclass(frozen=True)
class Baseline:
    """A fitted dummy model as plain numbers: its predictions on any rows follow from them."""

    task: str
    strategy: str
    classes: tuple[str, ...] | None = None  # classification: the classes, sorted
    prior: tuple[float, ...] | None = None  # classification: their shares in the train split
    constant: float | None = None  # regression: the predicted value

    @classmethod
    def from_fitted(cls, task: str, strategy: str, fitted: Any) -> Baseline:
        if task == "classification":
            return cls(
                task,
                strategy,
                classes=tuple(str(c) for c in fitted.classes_),
                prior=tuple(float(p) for p in fitted.class_prior_),
            )
        return cls(task, strategy, constant=float(np.ravel(fitted.constant_)[0]))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        fitted = data["fitted"]
        classes, prior = fitted.get("classes"), fitted.get("prior")
        return cls(
            task=data["task"],
            strategy=data["strategy"],
            classes=None if classes is None else tuple(str(c) for c in classes),
            prior=None if prior is None else tuple(float(p) for p in prior),
            constant=fitted.get("constant"),
        )

    def to_dict(self) -> dict[str, Any]:
        fitted: dict[str, Any] = (
            {"classes": list(self.classes or ()), "prior": list(self.prior or ())}
            if self.task == "classification"
            else {"constant": self.constant}
        )
        return {
            "task": self.task,
            "strategy": self.strategy,
            "estimator": ESTIMATORS[self.task],
            "fitted": fitted,
        }

    def outputs(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and class probabilities) for `n` rows, exactly as the fitted dummy
        gives them: the most frequent class (the first of equals), the prior as probabilities
        (`prior`) or one-hot (`most_frequent`); the constant for regression."""
        if self.task != "classification":
            return np.full(n, float(self.constant or 0.0)), None
        classes, prior = list(self.classes or ()), np.asarray(self.prior, dtype=float)
        top = int(np.argmax(prior))
        pred = np.empty(n, dtype=object)
        pred[:] = classes[top]
        row = prior if self.strategy == "prior" else np.eye(len(classes))[top]
        return pred, np.tile(row, (n, 1))

    def score(self, y: Any) -> tuple[dict[str, float], dict[str, str]]:
        """Every metric of the task on rows with labels `y` (values, and why any is undefined)."""
        from pipeline import metrics

        pred, proba = self.outputs(len(y))
        classes = list(self.classes) if self.classes is not None else None
        return metrics.explain(self.task, np.asarray(y), pred, proba, classes)


# -------------------------------------------------------------------------------- the floors
@dataclass(frozen=True)
class Floor:
    """One resolved floor (a ceiling for minimized metrics). `bound` is None when the baseline
    could not be scored on the metric, so the floor cannot be resolved."""

    metric: str
    bound: float | None
    source: str  # absolute | baseline
    baseline: float | None = None
    margin: Amount | None = None

    @property
    def kind(self) -> str:
        return "ceiling" if self.metric in MINIMIZED_METRICS else "floor"

    def shown(self) -> str:
        """The bound as a sentence ends: `0.85`, `0.5500 (baseline 0.5000 + 0.05)` or
        `70.1525 (baseline 77.9472 - 10%)`."""
        if self.source == "absolute":
            return f"{self.bound:g}"
        assert self.margin is not None
        sign = "-" if self.metric in MINIMIZED_METRICS else "+"
        amount = (
            f"{self.margin.value:g}"
            if self.margin.kind == "absolute"
            else f"{self.margin.value * 100:g}%"
        )
        bound = "unresolved" if self.bound is None else f"{self.bound:.4f}"
        base = "undefined" if self.baseline is None else f"{self.baseline:.4f}"
        return f"{bound} (baseline {base} {sign} {amount})"

    def check(self, value: float | None) -> tuple[bool, str | None]:
        """(passed, why not): the value meets the bound."""
        word = "above the ceiling" if self.kind == "ceiling" else "under the floor"
        if self.bound is None:
            return False, (
                f"{self.metric} {self.kind} unresolved: the baseline's {self.metric} could not "
                "be computed"
            )
        if value is None:
            return False, f"{self.metric} could not be computed"
        if meets(self.metric, value, self.bound):
            return True, None
        return False, f"{self.metric} {value:.4f} is {word} {self.shown()}"

    def met(self) -> str:
        """How a passing value is described: `meets the floor` / `is within the ceiling`."""
        return "is within the ceiling" if self.kind == "ceiling" else "meets the floor"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, self.kind: self.bound, "source": self.source}
        if self.source == "baseline":
            assert self.margin is not None
            out["baseline"] = self.baseline
            out["margin"] = (
                {"declared": self.margin.declared()}
                if self.baseline is None
                else self.margin.record(self.baseline)
            )
        return out


def meets(metric: str, value: float, bound: float) -> bool:
    """A floor is the worst acceptable value: a minimum for a maximized metric, a maximum (a
    ceiling) for a minimized one; the bound itself passes."""
    return value <= bound if metric in MINIMIZED_METRICS else value >= bound


def binding(floors: Sequence[Floor]) -> float | None:
    """The bound that decides among `floors` on one metric (the highest floor, the lowest
    ceiling); None when none is resolved."""
    bounds = [f.bound for f in floors if f.bound is not None]
    if not bounds:
        return None
    return min(bounds) if floors[0].metric in MINIMIZED_METRICS else max(bounds)


def resolve(
    absolute: Mapping[str, float] | None,
    beat: Mapping[str, Amount] | None,
    baseline_scores: Mapping[str, float] | None,
) -> list[Floor]:
    """The floors that apply: every absolute floor as declared, then each baseline floor made
    from the baseline's score (None when the baseline has no score on that metric)."""
    floors = [Floor(m, float(v), "absolute") for m, v in (absolute or {}).items()]
    for metric, amount in (beat or {}).items():
        base = (baseline_scores or {}).get(metric)
        bound = None
        if base is not None:
            delta = amount.resolve(base)
            bound = base - delta if metric in MINIMIZED_METRICS else base + delta
        floors.append(Floor(metric, bound, "baseline", base, amount))
    return floors


def check(
    floors: Sequence[Floor], values: Mapping[str, float | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each floor's evidence (`to_dict` plus the value and the verdict) and the failures."""
    checks, failures = [], []
    for floor in floors:
        value = values.get(floor.metric)
        passed, why = floor.check(value)
        checks.append({**floor.to_dict(), "value": value, "passed": passed})
        if why:
            failures.append(why)
    return checks, failures


def describe(floors: Sequence[Floor]) -> str:
    """`balanced_accuracy 0.5500 (baseline 0.5000 + 0.05), r2 0.2`, for reasons."""
    return ", ".join(f"{f.metric} {f.shown()}" for f in floors)
