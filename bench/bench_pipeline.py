"""The develop graph (`mlops compose --check && dvc repro evaluate` from scratch: ingest,
validate, prepare, train (every candidate), evaluate) against one plain script doing the same
scikit-learn work (bench/_plain_script.py), in the same run, at one or more candidate counts
(`--candidates 3,6,10`); then, with `--rest`, the rest of the graph (deploy and monitor stages,
which the script does not do) is timed on its own.

Beyond the three declared candidates, the scratch copy declares more entries of the same
allow-listed models with other hyperparameters (`extra_candidates`, through conf/local/ of the
copy, composed into its params.yaml), and the plain script reads that params.yaml: both do the
same fits at every count.

Goal: the pipeline costs at most 1.5x the plain script's wall time at every count. The
difference is what DVC and per-stage processes cost: interpreter start-up and imports (pandas +
scikit-learn take over a second per stage), hashing, writing artifacts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _project import BIN, ROOT, copy_project, median, run

# Variations of the default candidates: (model config in conf/model/, overrides). Every one
# keeps its model's declared search, so each extra candidate costs about what its model does.
VARIATIONS = (
    ("logistic_regression", {"class_weight": "balanced"}),
    ("random_forest_classifier", {"n_estimators": 100, "class_weight": "balanced"}),
    ("hist_gradient_boosting_classifier", {"min_samples_leaf": 10, "l2_regularization": 1.0}),
    ("logistic_regression", {"tol": 0.001, "max_iter": 500}),
    ("random_forest_classifier", {"n_estimators": 150, "criterion": "entropy"}),
    ("hist_gradient_boosting_classifier", {"min_samples_leaf": 30, "max_iter": 150}),
    ("logistic_regression", {"class_weight": "balanced", "tol": 0.00001}),
)
DECLARED = 3  # candidates of conf/task/classification.yaml


def local_config(count: int, fast: bool) -> dict | None:
    """conf/local/ of the scratch copy: `count - 3` more candidates (variations of the declared
    models, named `<model>_<i>`) and, with `fast`, the fast experiment's settings; None when
    neither applies."""
    if not DECLARED <= count <= DECLARED + len(VARIATIONS):
        raise SystemExit(
            f"--candidates: each count must be in {DECLARED}..{DECLARED + len(VARIATIONS)}"
        )
    body: dict = yaml.safe_load((ROOT / "conf/experiment/fast.yaml").read_text()) if fast else {}
    extras = VARIATIONS[: count - DECLARED]
    if not body and not extras:
        return None
    defaults = []
    for i, (model, values) in enumerate(extras, start=1):
        name = f"{model.removesuffix('_classifier')}_{i}"
        defaults.append({f"/model@candidates.{name}": model})
        body.setdefault("candidates", {})[name] = dict(values)
    return {"defaults": [*defaults, "_self_"], **body}


def prepare(dest: Path, count: int, fast: bool, source: Path = ROOT) -> Path:
    """A fresh git copy of the project (of `source`) declaring `count` candidates."""
    project = copy_project(dest, source)
    local = local_config(count, fast)
    if local is not None:
        text = "# @package _global_\n" + yaml.safe_dump(local, sort_keys=False)
        (project / "conf/local/default.yaml").write_text(text)
        run([str(BIN / "mlops"), "compose"], project)
    return project


def _runs(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _graph(project: Path) -> float:
    return run([str(BIN / "mlops"), "compose", "--check"], project) + run(
        [str(BIN / "dvc"), "repro", "--no-run-cache", "evaluate"], project
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--candidates", default="3", help="comma-separated counts, e.g. 3,6,10")
    parser.add_argument("--fast", action="store_true", help="use the fast experiment settings")
    parser.add_argument("--rest", action="store_true", help="also time the rest of the graph")
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. the main branch): its graph is timed too, interleaved, "
        "so that a change is measured before and after in one run",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.candidates.split(",")]
    kinds = ["script", "pipeline", *(["against"] if args.against else []), "rest"]
    times = {n: {kind: [] for kind in kinds} for n in counts}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for n in counts:
                project = prepare(Path(tmp) / f"p{i}-{n}", n, args.fast)
                script = [str(BIN / "python"), str(ROOT / "bench/_plain_script.py")]
                script.append(str(project / "params.yaml"))
                times[n]["script"].append(run(script, ROOT))
                times[n]["pipeline"].append(_graph(project))
                if args.against:
                    other = prepare(Path(tmp) / f"a{i}-{n}", n, args.fast, args.against)
                    times[n]["against"].append(_graph(other))
                if args.rest:
                    times[n]["rest"].append(
                        run([str(BIN / "dvc"), "repro", "--no-run-cache"], project)
                    )
                done = ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times[n].items() if v)
                print(f"run {i + 1}, {n} candidates: {done}", flush=True)
    which = "fast experiment" if args.fast else "default config"
    print(f"{which}, {args.repeat} run(s) each, interleaved")
    for n in counts:
        s = median(times[n]["script"])
        print(f"{n} candidates:")
        runs = _runs(times[n]["script"])
        print(f"  {'plain script, same scikit-learn work:':39s} median {s:6.2f} s  {runs}")
        shown = [("pipeline", "compose --check && dvc repro evaluate")]
        if args.against:
            shown.append(("against", f"the same with {args.against}"))
        for kind, label in shown:
            p = median(times[n][kind])
            print(f"  {label + ':':39s} median {p:6.2f} s  {_runs(times[n][kind])}")
            print(f"    ratio to the script: {p / s:.2f}x (goal <= 1.5x); overhead {p - s:+.2f} s")
        if args.rest:
            r = median(times[n]["rest"])
            p = median(times[n]["pipeline"])
            print(
                f"  then the rest of the graph (package, deploy@*, simulate, monitor, "
                f"maintain): median {r:.2f} s; whole graph {p + r:.2f} s"
            )


if __name__ == "__main__":
    main()
