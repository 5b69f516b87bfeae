"""Fault injection for crash-safety tests, active only when MLOPS_TEST_KILL_AT_FSYNC is set.

Put this directory on PYTHONPATH and name a file: the process that is about to fsync that file's
temporary copy (after writing every byte, before the rename) SIGKILLs itself, which is the
worst moment to die: the data exists but is not yet in place.
"""

import os
import signal

_TARGET = os.environ.get("MLOPS_TEST_KILL_AT_FSYNC")

if _TARGET:
    _fsync = os.fsync

    def _killing_fsync(fd: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        name = os.path.basename(path)
        if name.startswith(f".{_TARGET}.") and name.endswith(".tmp"):
            os.kill(os.getpid(), signal.SIGKILL)
        _fsync(fd)

    os.fsync = _killing_fsync
