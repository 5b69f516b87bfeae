"""Where the deploy stages and commands read and write: the artifact contract, in one place.

The deploy layer reads develop's outputs by their file paths (it never imports
`pipeline.develop`): the champion and the prepared splits are files with a documented format.
"""

from __future__ import annotations

from pathlib import Path

# develop's outputs, read by path
CHAMPION_DIR = Path("models/champion")
CHAMPION_MODEL = CHAMPION_DIR / "model.skops"
CHAMPION_RECORD = CHAMPION_DIR / "champion.json"
TRAIN_SPLIT = Path("data/prepared/train.parquet")
TEST_SPLIT = Path("data/prepared/test.parquet")

# deploy's own
BUNDLE_DIR = Path("models/bundle")  # the champion's bundle (output of `package`)
BUNDLES_DIR = Path("bundles")  # released bundles, one DVC-tracked directory per bundle id
DEPLOY_DIR = Path("deploy")  # deploy/<target>.json: the desired release (committed)
REPORTS_DIR = Path("reports/deploy")  # reports/deploy/<target>.json: gate decisions
PINS_FILE = Path("conf/deploy/pins/generated.yaml")  # written by rollback / unpin only


def release_path(target: str) -> Path:
    return DEPLOY_DIR / f"{target}.json"


def report_path(target: str) -> Path:
    return REPORTS_DIR / f"{target}.json"


def released_bundle(bundle_id: str) -> Path:
    return BUNDLES_DIR / bundle_id
