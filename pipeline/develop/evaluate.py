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
from typing import Any

import numpy as np

from pipeline import metrics
from pipeline.config import load_params
from pipeline.data import read_table
from pipeline.develop.paths import (
    CANDIDATES_DIR,
    CHAMPION_DIR,
    DEVELOP_REPORTS,
    MODEL_FILE,
    PLOTS_DIR,
    split_path,
)
from pipeline.errors import MlopsError
from pipeline.io import atomic_write_bytes, atomic_write_text, read_json, sha256_file, write_json
from pipeline.settings import DatasetSpec, SelectionSpec
from pipeline.stage import log, run


class NoChampionError(MlopsError):
    """No candidate met the declared floors."""


# -------------------------------------------------------------------------------------- selection
def select(
    scores: Mapping[str, Mapping[str, float]],
    facts: Mapping[str, Mapping[str, int]],
    rule: SelectionSpec,
) -> dict[str, Any]:
    """The champion under `rule`, with the reason, from each candidate's scores (on the split
    the rule names) and deterministic facts (n_parameters, model_size, declared_order).

    A candidate under any floor cannot win; candidates within `tolerance` of the best primary
    score are tied, and the tie is broken by the declared keys (smaller first), never by
    anything measured from the clock.
    """
    metric = rule.metric
    verdicts: dict[str, dict[str, Any]] = {}
    for name, values in scores.items():
        failed = []
        for floor_metric, floor in rule.floors.items():
            value = values.get(floor_metric)
            if value is None or not metrics.meets_floor(floor_metric, value, floor):
                shown = "missing" if value is None else f"{value:.4f}"
                word = (
                    "above the ceiling"
                    if floor_metric in ("log_loss", "rmse", "mae")
                    else "under the floor"
                )
                failed.append(f"{floor_metric} {shown} is {word} {floor}")
        if values.get(metric) is None:
            failed.append(f"{metric} could not be computed")
        verdicts[name] = {"eligible": not failed, "failed_floors": failed}
    eligible = [n for n in scores if verdicts[n]["eligible"]]
    if not eligible:
        return {
            "champion": None,
            "reason": "no candidate meets the floors: "
            + "; ".join(f"{n}: {', '.join(v['failed_floors'])}" for n, v in verdicts.items()),
            "candidates": verdicts,
            "tied": [],
        }
    sign = -1.0 if rule.direction == "minimize" else 1.0
    best = max(eligible, key=lambda n: (sign * scores[n][metric], -facts[n]["declared_order"]))
    best_value = scores[best][metric]
    # A relative epsilon so that "within 0.002" includes 0.951 vs 0.949 despite binary floats.
    slack = rule.tolerance + 1e-9 * max(1.0, abs(best_value))
    tied = [n for n in eligible if abs(scores[n][metric] - best_value) <= slack]
    keys = [*rule.tie_break, "declared_order"]
    ranked = sorted(tied, key=lambda n: tuple(facts[n][k] for k in keys))
    champion = ranked[0]
    return {
        "champion": champion,
        "reason": _reason(champion, best, ranked, scores, facts, rule),
        "candidates": verdicts,
        "tied": ranked,
    }


def _reason(
    champion: str,
    best: str,
    ranked: list[str],
    scores: Mapping[str, Any],
    facts: Mapping[str, Any],
    rule: SelectionSpec,
) -> str:
    m, on = rule.metric, rule.scored_on
    text = f"{champion} has the best {m} ({scores[champion][m]:.4f} on {on})"
    if champion != best or len(ranked) > 1:
        others = [n for n in ranked if n != champion]
        text = (
            f"{champion} wins a tie on {m} within tolerance {rule.tolerance} "
            f"(best {scores[best][m]:.4f} by {best}; tied: {', '.join(ranked)}), broken by "
            + ", ".join(rule.tie_break or ["declared_order"])
            + ": "
            + "; ".join(
                f"{n} " + ", ".join(f"{k}={facts[n][k]}" for k in rule.tie_break)
                for n in [champion, *others]
            )
        )
    floors = ", ".join(f"{k} {v}" for k, v in rule.floors.items())
    return text + (f"; every eligible candidate meets the floors ({floors})" if floors else "")


# ----------------------------------------------------------------------------------------- scoring
def score(model: Any, X: Any, y: Any, task: str) -> tuple[dict[str, float], Any, Any]:
    """Test metrics, predictions and probabilities (None for regressors) of one model."""
    pred = model.predict(X)
    proba = (
        model.predict_proba(X)
        if task == "classification" and hasattr(model, "predict_proba")
        else None
    )
    classes = list(model.classes_) if task == "classification" else None
    return metrics.compute(task, y, pred, proba, classes), pred, proba


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
def model_card(
    champion: Mapping[str, Any], selection: Mapping[str, Any], params: Mapping[str, Any]
) -> str:
    ds = params["dataset"]
    lines = [
        f"# Model card: {champion['name']} ({champion['estimator']})",
        "",
        f"Generated by the `evaluate` stage; do not edit. Task: **{champion['task']}** on "
        f"dataset **{ds['name']}** (target `{ds['target']}`).",
        "",
        "## Intended use",
        ds.get("description") or "(describe the dataset in conf/dataset/ to fill this in)",
        "",
        "## Why this model",
        selection["reason"] + ".",
        "",
        "## Metrics",
        "| metric | cross-validation (mean ± std) | test split |",
        "|---|---|---|",
    ]
    for name, test_value in champion["metrics"]["test"].items():
        cv = champion["metrics"]["cv"].get(name)
        cv_text = f"{cv['mean']:.4f} ± {cv['std']:.4f}" if cv else "n/a"
        lines.append(f"| {name} | {cv_text} | {test_value:.4f} |")
    lines += [
        "",
        "## All candidates",
        f"| candidate | {selection['rule']['metric']} ({selection['rule']['scored_on']}) "
        "| eligible | notes |",
        "|---|---|---|---|",
    ]
    for name, cand in selection["candidates"].items():
        value = cand["scores"][selection["rule"]["scored_on"]].get(selection["rule"]["metric"])
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
    params = load_params(hyperparameters=False)
    task, names = params["task"], list(params["candidates"])
    rule = SelectionSpec.from_params(params["selection"])
    dataset = DatasetSpec.from_params(params["dataset"])
    test = read_table(split_path("test"), "parquet")
    X, y = test[[c.name for c in dataset.features]], test[dataset.target]
    records: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    from pipeline.io import load_model

    for order, name in enumerate(names):
        rec = read_json(CANDIDATES_DIR / name / "candidate.json")
        model = load_model(CANDIDATES_DIR / name / MODEL_FILE, rec["model"]["sha256"])
        test_metrics, pred, proba = score(model, X, y, task)
        records[name] = {**rec, "test": test_metrics, "declared_order": order}
        outputs[name] = (model, pred, proba)
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
    decision = select(scores, facts, rule)
    selection = {
        "rule": {
            "metric": rule.metric,
            "direction": rule.direction,
            "scored_on": rule.scored_on,
            "floors": dict(rule.floors),
            "tolerance": rule.tolerance,
            "tie_break": list(rule.tie_break),
        },
        "champion": decision["champion"],
        "reason": decision["reason"],
        "candidates": {
            n: {
                "estimator": r["estimator"],
                **decision["candidates"][n],
                "scores": {"cv": {m: v["mean"] for m, v in r["cv"].items()}, "test": r["test"]},
                "cv_std": {m: v["std"] for m, v in r["cv"].items()},
                **facts[n],
            }
            for n, r in records.items()
        },
    }
    write_json(DEVELOP_REPORTS / "selection.json", selection)
    if decision["champion"] is None:
        raise NoChampionError(
            decision["reason"],
            hint="relax selection.floors or improve the "
            "candidates; details in reports/develop/selection.json",
        )
    write_champion(decision["champion"], records, outputs, selection, params, len(test))


def write_champion(
    name: str,
    records: Mapping[str, Any],
    outputs: Mapping[str, Any],
    selection: Mapping[str, Any],
    params: Mapping[str, Any],
    n_test: int,
) -> None:
    rec = records[name]
    model, pred, proba = outputs[name]
    task = params["task"]
    dataset = DatasetSpec.from_params(params["dataset"])
    data = (CANDIDATES_DIR / name / MODEL_FILE).read_bytes()
    atomic_write_bytes(CHAMPION_DIR / MODEL_FILE, data)
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
        },
        "model": {"file": MODEL_FILE, "sha256": rec["model"]["sha256"]},
        "n_parameters": rec["n_parameters"],
        "model_size": rec["model_size"],
        "data": {
            "train_rows": int(read_table(split_path("train"), "parquet").shape[0]),
            "test_rows": n_test,
            "train_sha256": sha256_file(split_path("train")),
            "test_sha256": sha256_file(split_path("test")),
        },
        "versions": rec["versions"],
    }
    write_json(CHAMPION_DIR / "champion.json", champion)
    write_json(
        DEVELOP_REPORTS / "metrics.json",
        {"test": rec["test"], "cv": {m: v["mean"] for m, v in rec["cv"].items()}},
    )
    test = read_table(split_path("test"), "parquet")
    classes = list(model.classes_) if task == "classification" else None
    for file, text in plot_files(task, test[dataset.target], pred, proba, classes).items():
        atomic_write_text(PLOTS_DIR / file, text)
    atomic_write_text(DEVELOP_REPORTS / "model_card.md", model_card(champion, selection, params))
    m = params["selection"]["metric"]
    log(
        f"evaluate: champion {name} — test {m} {rec['test'].get(m, float('nan')):.4f}; "
        f"{selection['reason']}"
    )


if __name__ == "__main__":
    run(main)
