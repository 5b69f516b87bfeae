"""Where a drift reference's files are, kept free of numpy and pandas: `pipeline.deploy.bundle`
digests a bundle's reference with it, and the service imports that module.

A saved reference is a directory holding `reference.json` (its manifest) and the array files
that manifest lists; a bundle keeps its reference in the subdirectory `reference/`.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.io import read_json

MANIFEST = "reference.json"
IN_BUNDLE = "reference"  # the subdirectory of a bundle that holds its reference


def reference_files(directory: str | Path) -> list[str]:
    """The files a saved reference consists of (its manifest first), relative to `directory`:
    what a bundle manifest digests."""
    manifest = read_json(Path(directory) / MANIFEST)
    return [MANIFEST, *sorted(spec["file"] for spec in manifest["arrays"].values())]
