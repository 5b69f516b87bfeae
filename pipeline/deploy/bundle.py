"""Bundles: everything a deployment target needs to serve one model, content-addressed.

A bundle is a directory:

    bundle.json          metadata (model, metrics, data and config digests, library versions)
                         and the sha256 of every other file; no wall-clock time anywhere
    model.skops          the fitted Pipeline(preprocessing, estimator)
    signature.json       the input signature (a JSON Schema with `x-mlops` extensions)
    predictions.parquet  offline predictions on the test split: the smoke test compares the
                         served model with them, and monitoring uses them as the reference
                         for prediction drift; columns `row` (position in the test split),
                         `prediction`, and `proba_<class>` per class for classifiers
    reference/           the monitoring reference: a summary of the training split's monitored
                         columns (`pipeline.profile.reference`), so that monitoring judges a
                         release against its own training data, whatever is trained later

The bundle's digest is the sha256 of `bundle.json` (written canonically), which covers every
file (the reference's files as `reference/<name>`); its id is the first 16 hex digits. The same
champion, data and config always give the same bundle id, so "already released" is a comparison
of ids.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.deploy.signature import Signature
from pipeline.errors import ArtifactError
from pipeline.io import (
    dumps_json,
    loads_model,
    read_json,
    sha256_bytes,
    sha256_file,
    verify_manifest,
)
from pipeline.profile.layout import IN_BUNDLE, reference_files

# 2: the bundle carries its monitoring reference (reference/); format 1 did not. Both load for
# serving, gating and rollback (they need no reference); monitoring refuses a bundle without one.
FORMAT = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "bundle.json"
MODEL = "model.skops"
SIGNATURE = "signature.json"
PREDICTIONS = "predictions.parquet"
REFERENCE = IN_BUNDLE  # "reference"
ID_LENGTH = 16


def bundle_id(digest: str) -> str:
    return digest[:ID_LENGTH]


def write_manifest(directory: Path, meta: Mapping[str, Any]) -> str:
    """Record the digests of the bundle's files next to `meta`; returns the bundle digest.

    The reference's files are digested when `directory/reference/` holds one (`package` always
    writes it; hand-built bundles in tests and benchmarks may leave it out, and monitoring then
    refuses them)."""
    from pipeline.io import atomic_write_text

    names = [MODEL, SIGNATURE, PREDICTIONS]
    if (directory / REFERENCE).is_dir():
        names += [f"{REFERENCE}/{name}" for name in reference_files(directory / REFERENCE)]
    files = {name: sha256_file(directory / name) for name in names}
    text = dumps_json({"format": FORMAT, **meta, "files": files})
    atomic_write_text(directory / MANIFEST, text)
    return sha256_bytes(text.encode())


@dataclass
class Bundle:
    path: Path
    digest: str
    meta: dict[str, Any]
    model: Any
    signature: Signature

    @property
    def id(self) -> str:
        return bundle_id(self.digest)

    @property
    def task(self) -> str:
        return str(self.meta["model"]["task"])

    def predictions(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.path / PREDICTIONS)


def verify(directory: Path, expected_digest: str | None = None) -> tuple[str, dict[str, Any]]:
    """Check the manifest digest (against the release's record) and every file's sha256."""
    digest, meta = verify_manifest(
        directory,
        MANIFEST,
        expected_digest,
        hint="run `dvc pull` for the released bundle, or `dvc repro`",
        required=(MODEL, SIGNATURE, PREDICTIONS),
    )
    if meta.get("format") not in READABLE_FORMATS:
        raise ArtifactError(
            f"{directory}: bundle format {meta.get('format')!r}; this version reads "
            f"{', '.join(map(str, READABLE_FORMATS))}",
            hint="a newer gitops-mlops wrote it: install the project's lock file",
        )
    return digest, meta


def check_versions(meta: Mapping[str, Any]) -> str | None:
    """Refuse a bundle written by a newer scikit-learn than the installed one (its model file
    may use features this version lacks); return a warning when the versions merely differ."""
    from importlib.metadata import version

    wanted = meta.get("versions", {}).get("scikit-learn")
    installed = version("scikit-learn")
    if wanted is None or wanted == installed:
        return None
    if _release(wanted) > _release(installed):
        raise ArtifactError(
            f"bundle was written by scikit-learn {wanted}, newer than the installed {installed}",
            hint="install the project's lock file "
            "(`make run` / `pip install -r requirements/run.lock`)",
        )
    return f"bundle written by scikit-learn {wanted}, loaded with {installed}"


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def load_bundle(directory: Path, expected_digest: str | None = None) -> Bundle:
    """Verify and load a bundle; never unpickles, never loads a file whose digest is wrong."""
    digest, meta = verify(directory, expected_digest)
    warning = check_versions(meta)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    model = loads_model((directory / MODEL).read_bytes(), str(directory / MODEL))
    signature = Signature(read_json(directory / SIGNATURE))
    return Bundle(directory, digest, meta, model, signature)
