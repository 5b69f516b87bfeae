"""A loaded bundle: the model, its input signature and metadata, ready to serve or gate.

The bundle format (layout, manifest, digests, id) is owned by the foundation module
`pipeline.bundle_format`, which monitoring reads too; this module adds what only the deploy
layer does with a bundle: load its model (skops, trusted types only) and its input signature,
and refuse a model written by a newer scikit-learn.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.bundle_format import MODEL, PREDICTIONS, SIGNATURE, bundle_id, verify
from pipeline.deploy.signature import Signature
from pipeline.errors import ArtifactError
from pipeline.io import loads_model, read_json


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
