"""Stage `evaluate`: score every candidate on the test split, pick the champion by the declared
rule, and write what a reviewer reads: `selection.json` (every score and the reason), the test
metrics (DVC metrics), DVC plots and a model card.

The candidates are the keys of `candidates` in params (never a folder listing), so a removed
candidate cannot linger, and the selection rule is a pure function (`select`) of the scores.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import floors as floor_rules
from pipeline import metrics
from pipeline.config import load_config
from pipeline.develop.folds import cv_summary, make_cv
from pipeline.errors import MlopsError
from pipeline.floors import Baseline, Floor
from pipeline.io import atomic_write_bytes, atomic_write_text, read_json, sha256_file, write_json
from pipeline.paths import (
    CANDIDATE_RECORD,
    CHAMPION_MODEL,
    CHAMPION_RECORD,
    DEVELOP_METRICS,
    MODEL_CARD,
    MODEL_FILE,
    PLOTS_DIR,
    SELECTION_REPORT,
    candidate_dir,
    split_path,
)
from pipeline.settings import DatasetSpec, SelectionSpec, metrics_for
from pipeline.stage import log, run
from pipeline.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.params import Params


class NoChampionError(MlopsError):
    """No candidate met the declared floors."""


# -------------------------------------------------------------------------------------- selection
def select(
    scores: Mapping[str, Mapping[str, float | None]],
    facts: Mapping[str, Mapping[str, int]],
    rule: SelectionSpec,
    floors: Sequence[Floor] | None = None,
) -> dict[str, Any]:
    """The champion under `rule`, with the reason, from each candidate's scores (on the split
    the rule names) and deterministic facts (n_parameters, model_size, declared_order).

    A candidate under any of `floors` (resolved on the same split; by default the rule's
    absolute floors and its baseline floors, unresolved without baseline scores) cannot win;
    candidates within the tolerance of the best primary score are tied (a relative tolerance
    is a share of the best score), and the tie is broken by the declared keys (smaller first),
    never by anything measured from the clock.
    """
    metric = rule.metric
    if floors is None:
        floors = floor_rules.resolve(rule.floors, rule.baseline.beat, None)
    verdicts: dict[str, dict[str, Any]] = {}
    for name, values in scores.items():
        _, failed = floor_rules.check(floors, values)
        if values.get(metric) is None:
            failed.append(f"{metric} could not be computed")
        verdicts[name] = {"eligible": not failed, "failed_floors": list(dict.fromkeys(failed))}
    eligible = [n for n in scores if verdicts[n]["eligible"]]
    if not eligible:
        return {
            "champion": None,
            "reason": "no candidate meets the floors: "
            + "; ".join(f"{n}: {', '.join(v['failed_floors'])}" for n, v in verdicts.items()),
            "candidates": verdicts,
            "tied": [],
            "tolerance": None,
        }
    value = {n: float(scores[n][metric]) for n in eligible}  # type: ignore[arg-type]
    # the metric's own direction (`selection.direction` is validated to agree with it)
    best = max(
        eligible, key=lambda n: (metrics.oriented(metric, value[n]), -facts[n]["declared_order"])
    )
    best_value = value[best]
    tolerance = rule.tolerance.resolve(best_value)
    # A relative epsilon so that "within 0.002" includes 0.951 vs 0.949 despite binary floats.
    slack = tolerance + 1e-9 * max(1.0, abs(best_value))
    tied = [n for n in eligible if abs(value[n] - best_value) <= slack]
    keys = [*rule.tie_break, "declared_order"]
    ranked = sorted(tied, key=lambda n: tuple(facts[n][k] for k in keys))
    champion = ranked[0]
    return {
        "champion": champion,
        "reason": _reason(champion, best, ranked, value, facts, rule, floors),
        "candidates": verdicts,
        "tied": ranked,
        "tolerance": rule.tolerance.record(best_value),
    }


def _reason(
    champion: str,
    best: str,
    ranked: list[str],
    value: Mapping[str, float],
    facts: Mapping[str, Any],
    rule: SelectionSpec,
    floors: Sequence[Floor],
) -> str:
    m, on = rule.metric, rule.scored_on
    text = f"{champion} has the best {m} ({value[champion]:.4f} on {on})"
    if champion != best or len(ranked) > 1:
        others = [n for n in ranked if n != champion]
        tolerance = rule.tolerance.describe(value[best], "the best score")
        text = (
            f"{champion} wins a tie on {m} within tolerance {tolerance} "
            f"(best {value[best]:.4f} by {best}; tied: {', '.join(ranked)}), broken by "
            + ", ".join(rule.tie_break or ["declared_order"])
            + ": "
            + "; ".join(
                f"{n} " + ", ".join(f"{k}={facts[n][k]}" for k in rule.tie_break)
                for n in [champion, *others]
            )
        )
    shown = floor_rules.describe(floors)
    return text + (f"; every eligible candidate meets the floors: {shown}" if shown else "")


# ---------------------------------------------------------------------------------------- baseline
def fit_baseline(
    params: Params,
    rule: SelectionSpec,
    dataset: DatasetSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> dict[str, Any]:
    """The trivial baseline (see `pipeline.floors`), fitted on the train split and scored the
    way the candidates are: cross-validated on the same folds with the same scorers, and on
    the test split by the shared metric definitions."""
    import warnings

    from sklearn.base import clone
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.model_selection import cross_validate

    task, split, spec = params.task, params.split, params.train
    X, y = train[[c.name for c in dataset.features]], train[dataset.target]
    groups = train[split.group_column] if split.method == "group" else None
    dummy = floor_rules.estimator(task, rule.baseline.strategy)
    scoring = metrics.scorers(task, n_classes=int(y.nunique()))
    with warnings.catch_warnings():
        # a model that predicts one class has no precision on the others: F1 counts it as 0
        warnings.filterwarnings("ignore", category=UndefinedMetricWarning)
        raw = cross_validate(
            dummy, X, y, cv=make_cv(task, split, spec), scoring=scoring, groups=groups
        )
    cv = {m: cv_summary(m, raw[f"test_{m}"]) for m in scoring}
    fitted = Baseline.from_fitted(task, rule.baseline.strategy, clone(dummy).fit(X, y))
    test_values, undefined = fitted.score(test[dataset.target])
    return {
        **fitted.to_dict(),
        "scores": {"cv": {m: v["mean"] for m, v in cv.items()}, "test": test_values},
        "cv_std": {m: v["std"] for m, v in cv.items()},
        "undefined": {"test": undefined},
    }


# ----------------------------------------------------------------------------------------- scoring
def score(
    model: Any, X: Any, y: Any, task: str
) -> tuple[dict[str, float], dict[str, str], Any, Any]:
    """Test metrics, why any metric is undefined, predictions and probabilities (None for
    regressors) of one model."""
    pred = model.predict(X)
    proba = (
        model.predict_proba(X)
        if task == "classification" and hasattr(model, "predict_proba")
        else None
    )
    classes = list(model.classes_) if task == "classification" else None
    values, undefined = metrics.explain(task, y, pred, proba, classes)
    return values, undefined, pred, proba


def every_metric(task: str, values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Every metric of the task, null where undefined: DVC metrics files always have the key."""
    return {m: values.get(m) for m in metrics_for(task)}


# ------------------------------------------------------------------------------------------- plots
def _csv(rows: dict[str, Sequence[Any]]) -> str:
    out = io.StringIO()
    names = list(rows)
    out.write(",".join(names) + "\n")
    for values in zip(*rows.values(), strict=True):
        out.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + "\n")
    return out.getvalue()


def plot_files(task: str, y: Any, pred: Any, proba: Any, classes: Any) -> dict[str, str]:
    """CSV text per plot file: confusion/ROC/PR for classification; predicted-vs-actual,
    residuals and calibration for regression (as declared in conf/task/*.yaml)."""
    from sklearn.metrics import precision_recall_curve, roc_curve
    from sklearn.preprocessing import label_binarize

    y = np.asarray(y)
    if task == "classification":
        files = {"confusion.csv": _csv({"actual": list(y), "predicted": list(pred)})}
        if proba is not None:
            if len(classes) == 2:
                truth, score_ = (y == classes[1]).astype(int), proba[:, 1]
            else:  # micro-average over one-vs-rest
                truth = label_binarize(y, classes=classes).ravel()
                score_ = np.asarray(proba).ravel()
            fpr, tpr, _ = roc_curve(truth, score_)
            precision, recall, _ = precision_recall_curve(truth, score_)
            files["roc.csv"] = _csv(
                {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
            )
            files["precision_recall.csv"] = _csv(
                {"recall": [float(v) for v in recall], "precision": [float(v) for v in precision]}
            )
        return files
    pred = np.asarray(pred, dtype=float)
    residual = y.astype(float) - pred
    order = np.argsort(pred, kind="stable")
    deciles = np.array_split(order, min(10, len(order)))
    return {
        "predictions.csv": _csv(
            {"actual": [float(v) for v in y], "predicted": list(map(float, pred))}
        ),
        "residuals.csv": _csv(
            {"predicted": list(map(float, pred)), "residual": list(map(float, residual))}
        ),
        "calibration.csv": _csv(
            {
                "decile": [i + 1 for i in range(len(deciles))],
                "mean_predicted": [float(pred[d].mean()) for d in deciles],
                "mean_actual": [float(y[d].astype(float).mean()) for d in deciles],
            }
        ),
    }


# -------------------------------------------------------------------------------------- model card
def _num(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.4f}" + ("" if std is None else f" ± {std:.4f}")


def model_card(champion: Mapping[str, Any], selection: Mapping[str, Any], params: Params) -> str:
    ds = params.dataset
    baseline = selection["baseline"]
    rule = selection["rule"]
    lines = [
        f"# Model card: {champion['name']} ({champion['estimator']})",
        "",
        f"Generated by the `evaluate` stage; do not edit. Task: **{champion['task']}** on "
        f"dataset **{ds.name}** (target `{ds.target}`).",
        "",
        "## Intended use",
        ds.description or "(describe the dataset in conf/dataset/ to fill this in)",
        "",
        "## Why this model",
        selection["reason"] + ".",
        "",
        "## Metrics",
        f"The baseline is {baseline['estimator']}(strategy={baseline['strategy']!r}): a model "
        "that learned nothing, fitted on the same train split and scored the same way.",
        "",
        "| metric | cross-validation (mean ± std) | test split | baseline (cv) | baseline (test) |",
        "|---|---|---|---|---|",
    ]
    undefined = champion["metrics"].get("undefined", {})
    for name in metrics_for(champion["task"]):
        cv = champion["metrics"]["cv"].get(name) or {}
        test_value = champion["metrics"]["test"].get(name)
        test_text = _num(test_value) if name not in undefined else f"undefined: {undefined[name]}"
        lines.append(
            f"| {name} | {_num(cv.get('mean'), cv.get('std')) if cv else 'n/a'} | {test_text} "
            f"| {_num(baseline['scores']['cv'].get(name))} "
            f"| {_num(baseline['scores']['test'].get(name))} |"
        )
    lines += ["", f"## Floors (on {rule['scored_on']}, in the metric's units)"]
    resolved = selection["floors"][rule["scored_on"]]
    if not resolved:
        lines.append("None declared.")
    for floor in resolved:
        kind = "ceiling" if "ceiling" in floor else "floor"
        bound = floor[kind]
        shown = "unresolved" if bound is None else f"{bound:.4f}"
        if floor["source"] == "absolute":
            lines.append(f"- {floor['metric']} {kind} {shown}: declared (absolute)")
        else:
            margin = floor["margin"]
            lines.append(
                f"- {floor['metric']} {kind} {shown}: the baseline's {_num(floor['baseline'])} "
                f"made better by {json.dumps(margin['declared'])}"
                + (f" = {margin['resolved']:.4g}" if "resolved" in margin else "")
            )
    tolerance = selection.get("tolerance")
    if tolerance:
        lines += [
            "",
            f"Tolerance: {json.dumps(tolerance['declared'])} resolves to "
            f"{tolerance['resolved']:.4g} in {rule['metric']} (candidates this close to the best "
            "are tied).",
        ]
    lines += [
        "",
        "## All candidates",
        f"| candidate | {rule['metric']} ({rule['scored_on']}) | eligible | notes |",
        "|---|---|---|---|",
    ]
    for name, cand in selection["candidates"].items():
        value = cand["scores"][rule["scored_on"]].get(rule["metric"])
        shown = "n/a" if value is None else f"{value:.4f}"
        notes = "; ".join(cand["failed_floors"]) or ("champion" if name == champion["name"] else "")
        lines.append(f"| {name} | {shown} | {'yes' if cand['eligible'] else 'no'} | {notes} |")
    lines += ["", "## Hyperparameters", "```yaml"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in sorted(champion["hyperparameters"].items())]
    lines += [
        "```",
        "",
        "## Data",
        f"- train rows: {champion['data']['train_rows']}, test rows: "
        f"{champion['data']['test_rows']}",
        f"- train sha256: `{champion['data']['train_sha256']}`",
        f"- test sha256: `{champion['data']['test_sha256']}`",
        f"- model sha256: `{champion['model']['sha256']}`",
        "",
        "## Environment",
    ]
    lines += [f"- {k} {v}" for k, v in champion["versions"].items()]
    lines += [
        "",
        "## Limitations",
        "Scores come from one dataset split; the test split is small for small datasets, so "
        "differences of a few points between candidates may be noise. Monitor the deployed "
        "model for drift (conf/monitor/).",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- stage
def main(argv: Sequence[str]) -> None:
    params = load_config(hyperparameters=False)
    task, names = params.task, list(params.candidates)
    rule, dataset = params.selection, params.dataset
    train = read_table(split_path("train"), "parquet")
    test = read_table(split_path("test"), "parquet")
    X, y = test[[c.name for c in dataset.features]], test[dataset.target]
    records: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    from pipeline.io import load_model

    for order, name in enumerate(names):
        rec = read_json(candidate_dir(name) / CANDIDATE_RECORD)
        model = load_model(candidate_dir(name) / MODEL_FILE, rec["model"]["sha256"])
        test_metrics, undefined, pred, proba = score(model, X, y, task)
        records[name] = {
            **rec,
            "test": test_metrics,
            "undefined": undefined,
            "declared_order": order,
        }
        outputs[name] = (model, pred, proba)
    baseline = fit_baseline(params, rule, dataset, train, test)
    resolved = {
        on: floor_rules.resolve(rule.floors, rule.baseline.beat, baseline["scores"][on])
        for on in ("cv", "test")
    }
    scores = {
        n: ({m: v["mean"] for m, v in r["cv"].items()} if rule.scored_on == "cv" else r["test"])
        for n, r in records.items()
    }
    facts = {
        n: {
            "n_parameters": r["n_parameters"],
            "model_size": r["model_size"],
            "declared_order": r["declared_order"],
        }
        for n, r in records.items()
    }
    decision = select(scores, facts, rule, resolved[rule.scored_on])
    selection = {
        "rule": {
            "metric": rule.metric,
            "direction": rule.direction,
            "scored_on": rule.scored_on,
            "floors": dict(rule.floors),
            "baseline": {
                "strategy": rule.baseline.strategy,
                "beat": {m: a.declared() for m, a in rule.baseline.beat.items()},
            },
            "tolerance": rule.tolerance.declared(),
            "tie_break": list(rule.tie_break),
        },
        "baseline": baseline,
        "floors": {on: [f.to_dict() for f in floors] for on, floors in resolved.items()},
        "tolerance": decision["tolerance"],
        "champion": decision["champion"],
        "reason": decision["reason"],
        "candidates": {
            n: {
                "estimator": r["estimator"],
                **decision["candidates"][n],
                "scores": {"cv": {m: v["mean"] for m, v in r["cv"].items()}, "test": r["test"]},
                "cv_std": {m: v["std"] for m, v in r["cv"].items()},
                "undefined": {"test": r["undefined"]},
                **facts[n],
            }
            for n, r in records.items()
        },
    }
    write_json(SELECTION_REPORT, selection)
    if decision["champion"] is None:
        raise NoChampionError(
            decision["reason"],
            hint="relax selection.floors / selection.baseline.beat or improve the "
            "candidates; details in reports/develop/selection.json",
        )
    write_champion(decision["champion"], records, outputs, selection, params, train, test)


def write_champion(
    name: str,
    records: Mapping[str, Any],
    outputs: Mapping[str, Any],
    selection: Mapping[str, Any],
    params: Params,
    train: pd.DataFrame,
    test: pd.DataFrame,
) -> None:
    rec = records[name]
    model, pred, proba = outputs[name]
    task, dataset = params.task, params.dataset
    data = (candidate_dir(name) / MODEL_FILE).read_bytes()
    atomic_write_bytes(CHAMPION_MODEL, data)
    baseline = selection["baseline"]
    champion = {
        "name": name,
        "task": task,
        "estimator": rec["estimator"],
        "hyperparameters": rec["hyperparameters"],
        "classes": [str(c) for c in model.classes_] if task == "classification" else None,
        "target": dataset.target,
        "features": [c.name for c in dataset.features],
        "metrics": {
            "test": rec["test"],
            "cv": {m: {"mean": v["mean"], "std": v["std"]} for m, v in rec["cv"].items()},
            "undefined": rec["undefined"],
        },
        # The fitted trivial baseline and its scores: the deploy gates rescore it on their
        # test split to resolve the baseline floors (pipeline/floors.py).
        "baseline": {k: baseline[k] for k in ("task", "strategy", "estimator", "fitted", "scores")},
        "model": {"file": MODEL_FILE, "sha256": rec["model"]["sha256"]},
        "n_parameters": rec["n_parameters"],
        "model_size": rec["model_size"],
        "data": {
            "train_rows": int(train.shape[0]),
            "test_rows": int(test.shape[0]),
            "train_sha256": sha256_file(split_path("train")),
            "test_sha256": sha256_file(split_path("test")),
        },
        "versions": rec["versions"],
    }
    write_json(CHAMPION_RECORD, champion)
    write_json(
        DEVELOP_METRICS,
        {
            "test": every_metric(task, rec["test"]),
            "cv": every_metric(task, {m: v["mean"] for m, v in rec["cv"].items()}),
        },
    )
    classes = list(model.classes_) if task == "classification" else None
    for file, text in plot_files(task, test[dataset.target], pred, proba, classes).items():
        atomic_write_text(PLOTS_DIR / file, text)
    atomic_write_text(MODEL_CARD, model_card(champion, selection, params))
    m = params.selection.metric
    value = rec["test"].get(m)
    shown = f"{value:.4f}" if value is not None else f"undefined ({rec['undefined'].get(m)})"
    log(f"evaluate: champion {name} — test {m} {shown}; {selection['reason']}")


if __name__ == "__main__":
    run(main)
