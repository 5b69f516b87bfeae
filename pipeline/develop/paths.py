"""Where the develop stages read and write: the artifact contract with dvc.yaml, in one place."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
VALIDATE_REPORT = Path("reports/validate.json")
SPLIT_REPORT = Path("reports/develop/split.json")
CANDIDATES_DIR = Path("models/candidates")
CHAMPION_DIR = Path("models/champion")
DEVELOP_REPORTS = Path("reports/develop")
PLOTS_DIR = DEVELOP_REPORTS / "plots"
LOCK_FILE = Path("requirements/run.lock")
MODEL_FILE = "model.skops"
SPLITS = ("train", "test", "pool")


# One fixed path whatever the dataset: DVC resolves a templated out from params.yaml and deletes
# it before the stage can re-validate the name, so `data/raw/${dataset.name}.parquet` let
# `dvc exp run -S dataset.name=../production/<window>` delete a production window. Which dataset
# the file holds is in dvc.lock (the `dataset.*` params of `ingest`).
RAW_FILE = RAW_DIR / "dataset.parquet"


def raw_path() -> Path:
    return RAW_FILE


def split_path(split: str) -> Path:
    return PREPARED_DIR / f"{split}.parquet"
