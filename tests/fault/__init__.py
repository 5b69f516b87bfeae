"""Fault injection for crash-safety tests: `sitecustomize.py` here hooks `os.fsync` in every
Python process whose PYTHONPATH holds this directory (see its docstring)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import env

FAULT = Path(__file__).resolve().parent


def fault_env(**extra: str) -> dict[str, str]:
    """The tests' environment with the fsync hook loaded, and `extra` (MLOPS_TEST_*) set."""
    out = env()
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULT), out.get("PYTHONPATH")]))
    return {**out, **extra}
