"""Fault injection for crash-safety tests: put this directory on PYTHONPATH and set one of

* MLOPS_TEST_KILL_AT_FSYNC=<name>[#<k>]: the process that is about to fsync a file it wrote
  (after writing every byte, before the rename that puts it in place) SIGKILLs itself, which
  is the worst moment to die: the data exists but is not yet in place. <name> is a file name
  (`model.skops`) or a path relative to the working directory (`deploy/local.json`), the way
  the file will be called once in place: `.<name>.<random>.tmp`, atomic_open's temporary, and
  files inside a temporary directory (a bundle being copied) count as the files they become.
  With `#<k>`, the k-th such fsync in that process (a journal writes its index several times).
* MLOPS_TEST_PAUSE_AT_FSYNC=<name>[#<k>] and MLOPS_TEST_PAUSE_DIR=<dir>: instead of dying, the
  process writes its pid to <dir>/paused and waits (up to two minutes) for <dir>/go: a test
  can then kill whatever it likes while a stage is mid-run, and see what it does next.
* MLOPS_TEST_WRITE_LOG=<file>: every process appends `<program>\t<name>` for each such fsync,
  so a test can list the write points of a command and then kill it at each one.

The variables are read at each fsync, not at start-up: a stage forked from the warm runner
gets its caller's environment after the runner started.
"""

import os
import re
import signal
import sys
import time

_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp")
_counts: dict[str, int] = {}


def _logical(path: str) -> str:
    """`path` relative to the working directory, each temporary component named as its target."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = path
    parts = [
        m["target"] if (m := _TEMPORARY.fullmatch(part)) else part for part in rel.split(os.sep)
    ]
    return "/".join(parts)


def _matches(spec: str, name: str) -> bool:
    """Whether `name` (logical) is the one `spec` names, counting the occurrences."""
    wanted, _, nth = spec.partition("#")
    hit = name == wanted if "/" in wanted else name.rsplit("/", 1)[-1] == wanted
    if not hit:
        return False
    _counts[spec] = _counts.get(spec, 0) + 1
    return _counts[spec] == int(nth or 1)


def _program() -> str:
    argv = getattr(sys, "argv", None) or ["?"]
    return os.path.basename(argv[0]) or "?"


def _pause(directory: str) -> None:
    with open(os.path.join(directory, "paused"), "w") as fh:
        fh.write(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(directory, "go")) and time.monotonic() < deadline:
        time.sleep(0.05)


_fsync = os.fsync


def _faulty_fsync(fd: int) -> None:
    env = os.environ
    kill, pause, log = (
        env.get("MLOPS_TEST_KILL_AT_FSYNC"),
        env.get("MLOPS_TEST_PAUSE_AT_FSYNC"),
        env.get("MLOPS_TEST_WRITE_LOG"),
    )
    if kill or pause or log:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if path and not os.path.isdir(path):
            name = _logical(path)
            if log:
                with open(log, "a") as fh:
                    fh.write(f"{_program()}\t{name}\n")
            if pause and _matches(pause, name):
                _pause(env["MLOPS_TEST_PAUSE_DIR"])
            if kill and _matches(kill, name):
                os.kill(os.getpid(), signal.SIGKILL)
    _fsync(fd)


os.fsync = _faulty_fsync
