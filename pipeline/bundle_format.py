"""The bundle format, read and write: everything a deployment target needs to serve one model,
content-addressed. `package` writes it; the gate, `mlops release`, the service, batch scoring,
`mlops sync`/`verify`, monitoring and maintenance read it, all through this module (deploy and
monitoring never import each other, so the format is a foundation both import).

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
of ids. Every file is checked against its recorded sha256 before use (`pipeline.io`), and a
released bundle against the digest its release record names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.io import atomic_write_text, dumps_json, sha256_bytes, sha256_file, verify_manifest
from pipeline.paths import MODEL_FILE
from pipeline.profile.layout import IN_BUNDLE, reference_files
from pipeline.profile.layout import MANIFEST as REFERENCE_MANIFEST
from pipeline.windows import PREDICTION_COLUMN

# 2: the bundle carries its monitoring reference (reference/); format 1 did not. Both load for
# serving, gating and rollback (they need no reference); monitoring refuses a bundle without one.
FORMAT = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "bundle.json"
MODEL = MODEL_FILE
SIGNATURE = "signature.json"
PREDICTIONS = "predictions.parquet"
REFERENCE = IN_BUNDLE  # "reference": the drift reference's subdirectory (format 2 on)
ID_LENGTH = 16
# predictions.parquet's columns: the row's position in the test split, the prediction (as
# `mlops predict` writes it) and, for a classifier, `proba_<class>` per class
# (`pipeline.deploy.scoring.predictions_frame` builds it)
ROW = "row"
PREDICTION = PREDICTION_COLUMN
# what every reader opens, so each must be digested; and what every manifest holds
REQUIRED_FILES = (MODEL, SIGNATURE, PREDICTIONS)
REQUIRED_KEYS = ("model", "metrics")
HINT = "run `dvc repro` (the champion's bundle, models/bundle) or `dvc pull` (a released bundle)"


def bundle_id(digest: str) -> str:
    return digest[:ID_LENGTH]


def write_manifest(directory: Path, meta: Mapping[str, Any]) -> str:
    """Record the digests of the bundle's files next to `meta`; returns the bundle digest.

    The reference's files are digested when `directory/reference/` holds one (`package` always
    writes it; hand-built bundles in tests and benchmarks may leave it out, and monitoring then
    refuses them)."""
    names = list(REQUIRED_FILES)
    if (directory / REFERENCE).is_dir():
        names += [f"{REFERENCE}/{name}" for name in reference_files(directory / REFERENCE)]
    files = {name: sha256_file(directory / name) for name in names}
    text = dumps_json({"format": FORMAT, **meta, "files": files})
    atomic_write_text(directory / MANIFEST, text)
    return sha256_bytes(text.encode())


def verify(directory: Path, expected_digest: str | None = None) -> tuple[str, dict[str, Any]]:
    """Check the manifest digest (against the release's record, when given), every file's
    sha256, the format and the manifest's entries; returns (digest, manifest)."""
    digest, meta = verify_manifest(
        directory, MANIFEST, expected_digest, hint=HINT, required=REQUIRED_FILES
    )
    if meta.get("format") not in READABLE_FORMATS:
        raise ArtifactError(
            f"{directory}: bundle format {meta.get('format')!r}; this version reads "
            f"{', '.join(map(str, READABLE_FORMATS))}",
            hint="a newer gitops-mlops wrote it: install the project's lock file",
        )
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise ArtifactError(f"{directory / MANIFEST}: no {key!r} entry; not a bundle manifest")
    return digest, meta


def has_reference(meta: Mapping[str, Any]) -> bool:
    """Whether a (verified) manifest digests a drift reference (bundle format 2 on)."""
    return f"{REFERENCE}/{REFERENCE_MANIFEST}" in (meta.get("files") or {})
