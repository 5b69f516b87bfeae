"""Where the deploy stages and commands read and write: the artifact contract, in one place.

The deploy layer reads develop's outputs by their file paths (it never imports
`pipeline.develop`): the champion and the prepared splits are files with a documented format.
"""

from __future__ import annotations

from pathlib import Path

# released bundles: bundles/<id>, shared with every reader of a release record
from pipeline.paths import BUNDLES_DIR as BUNDLES_DIR
from pipeline.paths import GATE_REPORTS_DIR
from pipeline.paths import released_bundle as released_bundle

# develop's outputs, read by path
CHAMPION_DIR = Path("models/champion")
CHAMPION_MODEL = CHAMPION_DIR / "model.skops"
CHAMPION_RECORD = CHAMPION_DIR / "champion.json"
TRAIN_SPLIT = Path("data/prepared/train.parquet")
TEST_SPLIT = Path("data/prepared/test.parquet")

# deploy's own
BUNDLE_DIR = Path("models/bundle")  # the champion's bundle (output of `package`)
DEPLOY_DIR = Path("deploy")  # deploy/<target>.json: the desired release (committed)
REPORTS_DIR = GATE_REPORTS_DIR  # reports/deploy/<target>.json: gate decisions
PINS_FILE = Path("conf/deploy/pins/generated.yaml")  # written by rollback / unpin only


def release_path(target: str) -> Path:
    return DEPLOY_DIR / f"{target}.json"


def report_path(target: str) -> Path:
    return REPORTS_DIR / f"{target}.json"
