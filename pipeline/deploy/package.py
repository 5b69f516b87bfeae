"""Stage `package`: build the champion's bundle in `models/bundle/` (see `bundle.py`).

The bundle is content-addressed: its id is the first 16 hex digits of the sha256 of its
manifest, and nothing in it depends on the clock or the machine, so the same champion, data
and config always give the same id ("already released" is then a comparison of ids).

Reads develop's outputs by path (`models/champion/`, `data/prepared/{train,test}.parquet`) and
the params the model depends on (task, dataset, split, preprocessing), which are digested into
the manifest so two bundles with equal models but different declared schemas differ. The
bundle also carries the monitoring reference summarised from the training split
(`pipeline.profile.reference.training_reference`, always in exact mode, so no monitoring
setting is a dependency of this stage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.bundle_format import (
    MODEL,
    PREDICTIONS,
    REFERENCE,
    SIGNATURE,
    bundle_id,
    write_manifest,
)
from pipeline.config import load_config
from pipeline.deploy import scoring
from pipeline.deploy.signature import Signature
from pipeline.errors import ArtifactError
from pipeline.io import (
    atomic_write_bytes,
    atomic_write_text,
    dumps_json,
    loads_model,
    read_json,
    sha256_bytes,
    sha256_file,
)
from pipeline.params import Params
from pipeline.paths import CHAMPION_BUNDLE, CHAMPION_MODEL, CHAMPION_RECORD, split_path
from pipeline.profile.reference import training_reference
from pipeline.stage import log, run
from pipeline.tables import read_table, write_parquet

# The params a fitted model depends on besides its own hyperparameters (recorded in the
# champion): what its input columns mean and how its training rows were chosen.
CONFIG_KEYS = ("task", "dataset", "split", "preprocessing")


def config_digest(params: Mapping[str, Any], champion: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the params the model depends on."""
    slice_ = {key: params[key] for key in CONFIG_KEYS}
    slice_["model"] = {
        "estimator": champion["estimator"],
        "hyperparameters": champion["hyperparameters"],
    }
    return sha256_bytes(dumps_json(slice_).encode())


def manifest_meta(
    champion: Mapping[str, Any], params: Mapping[str, Any], data: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything bundle.json records besides the file digests; no clock, no host names."""
    return {
        "model": {
            "name": champion["name"],
            "estimator": champion["estimator"],
            "hyperparameters": champion["hyperparameters"],
            "task": champion["task"],
            "classes": champion["classes"],
            "target": champion["target"],
            "features": champion["features"],
            "n_parameters": champion.get("n_parameters"),
        },
        "metrics": {"test": champion["metrics"]["test"], "cv": champion["metrics"]["cv"]},
        # The trivial baseline fitted with the champion (`pipeline.floors`): the gate rescores
        # it on its test split to resolve the baseline floors.
        "baseline": champion.get("baseline"),
        "data": dict(data),
        "config": {"sha256": config_digest(params, champion), "keys": list(CONFIG_KEYS)},
        # The versions that wrote the model file: `bundle.check_versions` refuses a bundle
        # from a newer scikit-learn than the one installed.
        "versions": champion["versions"],
    }


def build(directory: Path, params: Params) -> str:
    """Write the champion's bundle into `directory`; returns the bundle digest."""
    champion = read_json(CHAMPION_RECORD)
    data = CHAMPION_MODEL.read_bytes()
    if sha256_bytes(data) != champion["model"]["sha256"]:
        raise ArtifactError(
            f"{CHAMPION_MODEL}: sha256 does not match {CHAMPION_RECORD}",
            hint="run `dvc repro evaluate` (or `dvc checkout models/champion`)",
        )
    model = loads_model(data, str(CHAMPION_MODEL))
    dataset = params.dataset
    task = champion["task"]
    features = list(champion["features"])
    train = read_table(split_path("train"), "parquet")
    test = read_table(split_path("test"), "parquet")
    signature = Signature.build(dataset, train, task, champion["classes"])
    if signature.names != features:
        raise ArtifactError(
            f"{CHAMPION_RECORD}: features {features} differ from the declared dataset's "
            f"{signature.names}",
            hint="the champion is stale: run `dvc repro`",
        )
    pred, proba = scoring.predict(model, test[features], task)
    frame = scoring.predictions_frame(pred, proba, champion["classes"], rows=range(len(test)))
    atomic_write_bytes(directory / MODEL, data)
    atomic_write_text(directory / SIGNATURE, dumps_json(signature.to_dict()))
    write_parquet(frame, directory / PREDICTIONS)
    # The monitoring reference from this bundle's own training split: monitoring judges the
    # release against it, whatever is trained later.
    training_reference(train, dataset).save(directory / REFERENCE)
    meta = manifest_meta(
        champion,
        params.data,
        {
            "train_sha256": sha256_file(split_path("train")),
            "test_sha256": sha256_file(split_path("test")),
            "train_rows": len(train),
            "test_rows": len(test),
        },
    )
    return write_manifest(directory, meta)


def main(argv: Sequence[str]) -> None:
    params = load_config(hyperparameters=False)
    digest = build(CHAMPION_BUNDLE, params)
    log(f"package: bundle {bundle_id(digest)} in {CHAMPION_BUNDLE}/ (sha256 {digest[:12]}…)")


if __name__ == "__main__":
    run(main)
