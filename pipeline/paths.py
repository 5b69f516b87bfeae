"""Where every artifact lives, relative to the project root: the one owner of the layout.

Stages read each other's outputs by path, never by importing each other (develop, deploy and
monitor are independent packages), so the layout is a contract between them, between a stage
and the commands outside the graph, and with `dvc.yaml`, which declares the same paths as deps
and outs (tests/test_contracts.py holds the two in step and refuses a path spelled anywhere
else). A path used by one module only still lives here: a layout is read as a whole.

Labelled production rows for training (`mlops maintain --apply` writes them, `prepare` reads
them) live per dataset: `data/feedback/<dataset name>/<decision id>.parquet`. A project that
selects another dataset (a new line of releases) must not train on the old one's rows, and a
project that switches back finds its own again.
"""

from __future__ import annotations

from pathlib import Path

# ------------------------------------------------------------------------- file names
MODEL_FILE = "model.skops"  # the fitted model in a candidate, the champion and a bundle
METRICS_JSON = "metrics.json"  # a stage's `dvc metrics` file
REPORT_JSON = "report.json"  # monitoring's report (the stage's, or `mlops monitor --out`'s)
REPORT_HTML = "report.html"
HISTORY_CSV = "history.csv"  # monitoring's per-window history (`dvc plots`)

# ------------------------------------------------------------------------------- data
EXTERNAL_DIR = Path("data/external")  # a user's own data files (`dvc add`-ed); ingest reads them
RAW_DIR = Path("data/raw")
# One fixed path whatever the dataset: DVC resolves a templated out from params.yaml and deletes
# it before the stage can re-validate the name, so `data/raw/${dataset.name}.parquet` let
# `dvc exp run -S dataset.name=../production/<window>` delete a production window. Which dataset
# the file holds is in dvc.lock (the `dataset.*` params of `ingest`).
RAW_FILE = RAW_DIR / "dataset.parquet"
PREPARED_DIR = Path("data/prepared")  # the splits: prepare writes them, every layer reads them
SPLITS = ("train", "test", "pool")
FEEDBACK_DIR = Path("data/feedback")  # DVC-tracked file by file; the folder itself is git's
# Production windows: `mlops logs snapshot` / `logs import` write them, `monitor` and
# `maintain` read them.
PRODUCTION_DIR = Path("data/production")
SIMULATED_DIR = Path("data/simulated")  # simulated windows (output of `simulate`)
SCENARIOS_FILE = "scenarios.json"  # in SIMULATED_DIR: what each simulated window injects

# ------------------------------------------------------------------------------ models
CANDIDATES_DIR = Path("models/candidates")  # models/candidates/<name>/: one per candidate
CANDIDATE_RECORD = "candidate.json"  # in a candidate's folder, beside its model file
# each candidate's fit, kept by the digest of its inputs (`pipeline.develop.train`; persisted)
TRAIN_KEPT = Path("models/kept")
CHAMPION_DIR = Path("models/champion")
CHAMPION_MODEL = CHAMPION_DIR / MODEL_FILE
CHAMPION_RECORD = CHAMPION_DIR / "champion.json"
CHAMPION_BUNDLE = Path("models/bundle")  # the champion's bundle (output of `package`)
LOCK_FILE = Path("requirements/run.lock")  # the library versions a model was trained with

# ----------------------------------------------------------------------------- reports
VALIDATE_REPORT = Path("reports/validate.json")
DEVELOP_REPORTS = Path("reports/develop")
SPLIT_REPORT = DEVELOP_REPORTS / "split.json"
SELECTION_REPORT = DEVELOP_REPORTS / "selection.json"
DEVELOP_METRICS = DEVELOP_REPORTS / METRICS_JSON
MODEL_CARD = DEVELOP_REPORTS / "model_card.md"
PLOTS_DIR = DEVELOP_REPORTS / "plots"
# Gate decisions, reports/deploy/<target>.json: the deploy stages write them, `release`,
# `mlops summary`, `mlops status` and the pull-request report read them.
GATE_REPORTS_DIR = Path("reports/deploy")
# The deploy gates' paired-bootstrap comparisons, one file per distinct comparison keyed by the
# digest of its inputs (`pipeline.paired_bootstrap`): targets sharing an incumbent and compare
# settings compute it once. Machine-local (under the git-ignored .mlops/), never an output.
COMPARISONS_DIR = Path(".mlops/comparisons")
MONITOR_REPORTS = Path("reports/monitor")  # the `monitor` stage's reports
MONITOR_REPORT = MONITOR_REPORTS / REPORT_JSON
MONITOR_HTML = MONITOR_REPORTS / REPORT_HTML
MONITOR_METRICS = MONITOR_REPORTS / METRICS_JSON
MONITOR_HISTORY = MONITOR_REPORTS / HISTORY_CSV
# what monitoring keeps between runs (`pipeline.monitor.kept`; a persisted DVC output)
MONITOR_KEPT = MONITOR_REPORTS / "kept"
# retired production windows' verdicts (`mlops windows retain --apply`; git-tracked, a monitor dep)
MONITOR_ARCHIVE = Path("monitor/archive")
MANUAL_REPORTS = Path("reports/monitor-manual")  # `mlops monitor --input` (outside the graph)
DECISION = Path("reports/maintain/decision.json")  # the `maintain` stage's output
ROLLOUT_REPORTS = Path("reports/rollout")  # `mlops rollout analyze --apply` (outside the graph)

# --------------------------------------------------------- desired state (committed)
DEPLOY_DIR = Path("deploy")  # deploy/<target>.json: the release a target should serve
# Released bundles, one DVC-tracked directory per bundle id: `mlops release` writes them, and
# every reader of a release record (deploy, monitoring, maintenance) finds a release's bundle
# there.
BUNDLES_DIR = Path("bundles")
BUNDLES_GITIGNORE = BUNDLES_DIR / ".gitignore"  # written by `dvc add` of a released bundle
PINS_FILE = Path("conf/deploy/pins/generated.yaml")  # written by rollback / unpin only
LEDGER = Path("maintain/ledger.json")  # applied decisions (`mlops maintain --apply`)
DVC_LOCK = Path("dvc.lock")


def raw_path() -> Path:
    return RAW_FILE


def split_path(split: str) -> Path:
    """data/prepared/<split>.parquet (train, test or pool)."""
    return PREPARED_DIR / f"{split}.parquet"


def candidate_dir(name: str) -> Path:
    return CANDIDATES_DIR / name


def release_path(target: str) -> Path:
    """deploy/<target>.json: the release record (`pipeline.release_record`)."""
    return DEPLOY_DIR / f"{target}.json"


def report_path(target: str) -> Path:
    """reports/deploy/<target>.json: the gate's decision for `target`."""
    return GATE_REPORTS_DIR / f"{target}.json"


def rollout_report_path(target: str) -> Path:
    """reports/rollout/<target>.json: the analysis behind the last rollout step of `target`,
    committed with the step it caused."""
    return ROLLOUT_REPORTS / f"{target}.json"


# Deployment environments (pipeline/deploy/environments/): the image record of a target whose
# service runs from a container image (`mlops image record` writes it, rendering reads it), and
# the default folder each kind of environment renders its desired state into (a target may
# declare another under deploy/: `kubernetes.path`, `systemd.path`).
IMAGES_DIR = DEPLOY_DIR / "images"
ENVIRONMENT_DIRS = {"kubernetes": DEPLOY_DIR / "k8s", "systemd": DEPLOY_DIR / "systemd"}


def image_record_path(target: str) -> Path:
    """deploy/images/<target>.json: the image that serves the target's release
    (`pipeline.deploy.image`)."""
    return IMAGES_DIR / f"{target}.json"


def environment_dir(kind: str, target: str) -> Path:
    """deploy/k8s/<target> or deploy/systemd/<target>: where a target's environment is
    rendered unless its config declares another path."""
    return ENVIRONMENT_DIRS[kind] / target


def released_bundle(bundle_id: str) -> Path:
    """Where the bundle `bundle_id` of a release lives (relative to the project root)."""
    return BUNDLES_DIR / bundle_id


def bundle_pointer(bundle_id: str) -> Path:
    """The DVC pointer of a released bundle (committed with the release)."""
    return BUNDLES_DIR / f"{bundle_id}.dvc"


def feedback_dir(dataset: str) -> Path:
    """Where the labelled production rows of `dataset` (its declared name) are kept."""
    return FEEDBACK_DIR / dataset


def stray_feedback(root: Path) -> list[Path]:
    """Feedback files outside any dataset's folder (written before feedback was kept per
    dataset): no stage can tell which dataset they belong to."""
    return sorted((root / FEEDBACK_DIR).glob("*.parquet"))
