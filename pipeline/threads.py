"""The thread-count variables a process hands to the workers it starts.

joblib gives its own workers one OpenMP/BLAS thread each by setting `OMP_NUM_THREADS` and its
siblings (`ParallelBackendBase.MAX_NUM_THREADS_VARS`) in the environment they inherit. Two
places need the same for workers joblib does not start: the training stage (every fit single-
threaded, so a model's bytes do not depend on the machine's cores) and the warm stage runner
(its fork server, whose workers run the stages' folds). One module owns the list and the
restore, so the two cannot drift: it is a code dep of the `train` stage, which the runner is not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_thread_variables(*, override: bool) -> Iterator[None]:
    """joblib's thread-count variables at "1" inside the block, restored (or removed) after.

    `override`: set every one of them (a fit that must run single-threaded whatever the
    caller's environment says); otherwise only those not set already (a team's explicit
    `OMP_NUM_THREADS` is kept)."""
    from joblib.parallel import ParallelBackendBase

    saved = {key: os.environ.get(key) for key in ParallelBackendBase.MAX_NUM_THREADS_VARS}
    os.environ.update({k: "1" if override else (v or "1") for k, v in saved.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
