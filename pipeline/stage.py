"""What every stage entry point shares: one way to turn user errors into a message and exit 2.

Stages run as `python -m pipeline.<step>.<stage>` from dvc.yaml; they import only what they use,
since per-stage interpreter start-up is most of a small pipeline's wall time. (The warm
process that runs them is `pipeline.run`; this module holds only the helpers they share.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from pipeline.errors import MlopsError


def run(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> None:
    """Call a stage's main; a user error prints one clear message (no traceback) and exits 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(args)
    except MlopsError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code or 0)


def log(message: str) -> None:
    """Progress lines go to stderr so stdout stays clean for anything a stage prints as data."""
    print(message, file=sys.stderr, flush=True)
