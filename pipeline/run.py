"""`python -m pipeline.run MODULE [ARGS...]`: run a stage module, in a warm process when it can.

(The stage runner; the helpers every stage module shares are in `pipeline.stage`.)

Why: a small pipeline spends most of its wall time starting interpreters. Every stage is its own
process (DVC runs `cmd`), and importing pandas + scikit-learn + skops costs well over a second
per stage, more than most stages' actual work on the default data. So the first stage starts a
*stage runner* in the background: a process that has imported the heavy libraries once and then
forks a child per stage. The child is the stage: it gets the caller's working directory,
environment, umask and standard streams (passed over a Unix socket, SCM_RIGHTS), runs the
module's `__main__`, and its exit status becomes the caller's. Nothing about a stage's result
depends on which way it ran: same code, same inputs, same bytes out. The runner's preloaded
heap is frozen before the first fork (`freeze_heap`): a stage's full garbage collections walk
only what the stage made.

Safety valves:
* a stage dies with its caller: the runner watches each caller's connection and, when the
  caller goes away (killed by DVC's cancel, a CI job's cancel of the whole process group, or
  kill -9), kills the stage's process group, which its fold workers join; the caller itself
  dies with its own parent (`dvc`), and a stage dies with its runner (`PR_SET_PDEATHSIG`), so
  no stage ever writes its outputs for a run that was stopped;
* the runner is keyed by the interpreter, the `pipeline` package's real location (symlinks
  resolved: projects that link one package share its runner) and the mtime and size of every
  one of its files: edit the code and the next stage gets a fresh runner;
* it lives in a private directory (0700) and exits, with its fork server, after
  `MLOPS_RUNNER_IDLE_SECONDS` (default `IDLE_SECONDS`, 30) without work: nothing of it
  lingers after a `dvc repro` (the value of the caller that started the runner holds);
* anything unexpected (no runner, a broken socket, `MLOPS_RUNNER=0`) runs the module in this
  process instead, exactly as `python -m MODULE` would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

IDLE_SECONDS = 30.0  # default of MLOPS_RUNNER_IDLE_SECONDS
IDLE_ENV = "MLOPS_RUNNER_IDLE_SECONDS"
START_SECONDS = 20.0
# What fold workers need: forked from a clean, single-threaded process that has imported them.
# Each worker also imports its stage's module (multiprocessing's `__mp_main__`): the package
# modules a training stage imports are preloaded too, so that costs it milliseconds.
WORKER_PRELOAD = (
    "numpy",
    "pandas",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "pipeline.transformers",
    "pipeline.compute",
    "pipeline.config",
    "pipeline.factory",
    "pipeline.io",
    "pipeline.metrics",
    "pipeline.settings",
    "pipeline.stage",
    "pipeline.tables",
)
# What stages need, imported once by the runner before it forks them.
PRELOAD = (
    *WORKER_PRELOAD,
    "pyarrow.parquet",
    "scipy.stats",
    "sklearn.base",
    "skops.io",
    "jsonschema",
    "yaml",
    "pipeline.config",
    "pipeline.validation",
    "pipeline.tables",
    "pipeline.data_checks",
    "pipeline.coercion",
    "pipeline.splits",
    "pipeline.factory",
    "pipeline.io",
    "pipeline.metrics",
)


def _code_root() -> Path:
    """Where the `pipeline` package really is (symlinks resolved)."""
    import importlib.util

    spec = importlib.util.find_spec("pipeline")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).resolve().parent


# Read once per process by the libraries the runner preloads: a caller with other values needs
# another runner.
KEYED_ENV = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "PYTHONPATH",
)


def _key(root: Path) -> str:
    digest = hashlib.sha256(f"{sys.executable}\0{root}\0".encode())
    for name in KEYED_ENV:
        digest.update(f"{name}={os.environ.get(name)}\0".encode())
    for path in sorted(root.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_mtime_ns}\0{stat.st_size}\0".encode())
    return digest.hexdigest()[:20]


def _socket_path(key: str) -> Path:
    import tempfile

    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    base = Path(runtime) / f"mlops-runner-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid():
        raise OSError(f"{base} belongs to another user")
    base.chmod(0o700)
    return base / f"{key}.sock"


# ------------------------------------------------------------------------------------- client
def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _start_server(path: Path, root: Path) -> socket.socket | None:
    paths = [str(root.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.run", "--serve", str(path)],
        cwd=root.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        if server.poll() is not None:  # it failed to start: not worth waiting for
            return None
        time.sleep(0.05)
    return None


def _recv_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("runner closed the connection")
        data += chunk
    return data


def _send(
    sock: socket.socket, module: str, argv: list[str], env: Mapping[str, str], fds: list[int]
) -> int:
    """Ask the runner to fork `module` with this process's directory and umask, `env` and
    `fds` as its standard streams; the stage's pid."""
    umask = os.umask(0)
    os.umask(umask)
    request = {
        "module": module,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(env),
        "umask": umask,
    }
    socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], fds)
    return int(_recv_line(sock))


def run_remote(module: str, argv: list[str]) -> int | None:
    """Run in a warm runner; None when that is not possible (the caller runs it locally)."""
    if os.environ.get("MLOPS_RUNNER", "1") == "0":
        return None
    try:
        root = _code_root()
        path = _socket_path(_key(root))
        sock = _connect(path) or _start_server(path, root)
    except OSError:
        return None
    if sock is None:
        return None
    with sock:
        try:
            pid = _send(sock, module, argv, os.environ, [0, 1, 2])
        except (OSError, ValueError, ConnectionError):
            return None  # the stage did not start: the caller runs it here
        forward = lambda signum, _frame: os.kill(pid, signum)  # noqa: E731
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        try:
            status = int(_recv_line(sock))
        except (OSError, ValueError, ConnectionError):
            # the stage started but its runner went away: never run it a second time
            print("error: the stage runner went away while the stage ran", file=sys.stderr)
            return 1
    if status < 0:  # killed by a signal: die the same way, so DVC sees what happened
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's handler cannot be set
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def run_forked(
    module: str, argv: list[str], *, env: Mapping[str, str], fds: list[int], timeout: float
) -> int | None:
    """Run `module` in a process forked from the warm runner that serves this process's code
    and environment, with `env` as its environment and `fds` as its standard streams, and
    wait for its exit status (negative: the signal that killed it). For a process that a stage
    starts (the gate's smoke test): it gets a new process in milliseconds instead of a new
    interpreter importing pandas and scikit-learn. Never starts a runner: None when none is
    running (or `MLOPS_RUNNER=0`) or it could not start the process, and the caller starts
    one its own way. TimeoutError after `timeout` seconds, ConnectionError when the runner
    went away while it ran: either way the process is killed (the runner kills what a gone
    caller started)."""
    if os.environ.get("MLOPS_RUNNER", "1") == "0":
        return None
    try:
        sock = _connect(_socket_path(_key(_code_root())))
    except OSError:
        return None
    if sock is None:
        return None
    with sock:
        try:
            _send(sock, module, argv, env, fds)
        except (OSError, ValueError, ConnectionError):
            return None
        sock.settimeout(timeout)
        try:
            return int(_recv_line(sock))
        except TimeoutError:
            raise
        except (OSError, ValueError) as exc:
            raise ConnectionError("the stage runner went away") from exc


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int | None = None, signum: int = signal.SIGKILL) -> None:
    """Have the kernel send `signum` to this process when its parent dies (Linux's
    `PR_SET_PDEATHSIG`; a no-op elsewhere), and die at once if the parent is already gone.

    Why: kill -9 of a parent does not reach its children, so a stage started for a `dvc repro`
    that was killed would go on and write its outputs for a run nobody is waiting for.
    `parent` is the pid the parent had when this process was made, if known."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the signal was armed
        os.kill(os.getpid(), signum)


def run_local(module: str, argv: list[str]) -> None:
    import runpy

    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# ------------------------------------------------------------------------------------- server
def _child(conn: socket.socket, request: dict, fds: list[int], runner: int) -> None:
    """In the forked child: become the stage, then exit with its status."""
    code = 1
    try:
        # its own process group, which its fold workers join: the runner stops them all at
        # once when the caller goes away; and it dies with the runner
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        die_with_parent(runner)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        conn.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(request["umask"])
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fresh std streams on 0/1/2
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.path[0] = request["cwd"]
        _adopt_forkserver()
        try:
            run_local(request["module"], request["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - report like the interpreter would, then exit 1
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            _shutdown_workers()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _shutdown_workers() -> None:
    """What interpreter shutdown would do before `os._exit` skips it: run atexit handlers and
    stop joblib's reusable worker processes, which would otherwise outlive the stage and keep
    its output pipes open until their idle timeout."""
    import atexit

    reusable = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(reusable, "_executor", None) if reusable else None
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
    atexit._run_exitfuncs()


def _start_forkserver() -> None:
    """Start multiprocessing's fork server, preloaded, for the stages' parallel fold workers:
    they fork from it in milliseconds instead of starting an interpreter and importing
    scikit-learn (about a second per stage). Its workers get the thread limits joblib gives
    its own when the jobs fill the cores: one OpenMP/BLAS thread each, unless set already."""
    import multiprocessing
    from multiprocessing import forkserver

    from pipeline.threads import one_thread_variables

    with one_thread_variables(override=False):
        try:
            multiprocessing.set_forkserver_preload(list(WORKER_PRELOAD))
            forkserver.ensure_running()
        except (OSError, ValueError):  # no fork server: stages keep joblib's own workers
            pass


FORK_SERVER_ENV = "MLOPS_FORK_SERVER"


def _adopt_forkserver() -> None:
    """In a stage forked from the runner: let `fold_workers` use the runner's fork server.
    multiprocessing checks a fork server is alive with waitpid, which only its parent (the
    runner) may call; the runner outlives its stages, so here only the resource tracker is
    checked. Python versions without these internals simply keep joblib's own workers."""
    from multiprocessing import forkserver, resource_tracker

    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", None) is None:
        return
    server.ensure_running = resource_tracker.ensure_running  # type: ignore[union-attr]
    os.environ[FORK_SERVER_ENV] = "1"


def fold_workers(n_jobs: int | None) -> contextlib.AbstractContextManager[object]:
    """Where a stage's `n_jobs` parallel fits run: in a stage forked from the runner, in
    processes forked from the runner's preloaded fork server (milliseconds each, instead of a
    fresh interpreter importing scikit-learn for about a second); otherwise, and when fewer
    jobs than cores would leave joblib's workers several threads each, in joblib's own
    workers. The fits and their results are the same either way."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    if os.environ.get(FORK_SERVER_ENV) != "1" or getattr(server, "_forkserver_pid", None) is None:
        return contextlib.nullcontext()
    import multiprocessing

    import joblib

    if not fills_cores(n_jobs, joblib.cpu_count()):
        return contextlib.nullcontext()
    multiprocessing.set_start_method("forkserver", force=True)  # this stage process only
    backend = _shared_pool_backend()(initializer=join_stage, initargs=(os.getpgid(0),))
    return joblib.parallel_config(backend=backend)


# The fold workers' pools of this stage process, by their settings: every `Parallel` call of a
# stage (a search, a cross-validation, of each candidate) reuses one instead of starting and
# joining its own; `close_fold_pools` ends them.
_POOLS: dict[str, Any] = {}
_AT_EXIT: list[bool] = []  # whether `close_fold_pools` is registered to run at exit


def _shared_pool_backend() -> type:
    """joblib's multiprocessing backend, but with one pool per stage (`_POOLS`), not one per
    `Parallel` call: starting a pool costs a `gc.collect()`, forking its workers and joining
    them at the end, for every search and cross-validation of every candidate. The tasks and
    their order are joblib's own, so the fits and their results are the same bytes."""
    import atexit
    import gc

    from joblib._parallel_backends import (
        FallbackToBackend,
        MultiprocessingBackend,
        SequentialBackend,
    )
    from joblib.pool import MemmappingPool

    class SharedPoolBackend(MultiprocessingBackend):
        def configure(
            self,
            n_jobs: int = 1,
            parallel: Any = None,
            prefer: Any = None,
            require: Any = None,
            **kwargs: Any,
        ) -> int:
            n_jobs = self.effective_n_jobs(n_jobs)
            if n_jobs == 1:
                raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
            kwargs = {**self.backend_kwargs, **kwargs}
            key = repr((n_jobs, sorted(kwargs.items())))
            pool = _POOLS.get(key)
            if pool is None:
                gc.collect()
                if not _AT_EXIT:  # a stage's end runs atexit handlers (`_shutdown_workers`)
                    atexit.register(close_fold_pools)
                    _AT_EXIT.append(True)
                pool = _POOLS[key] = MemmappingPool(n_jobs, **kwargs)
            self._pool = pool
            self.parallel = parallel
            return n_jobs

        def terminate(self) -> None:
            self._pool = None  # left running for the stage's next `Parallel` call
            self.reset_batch_stats()

        def abort_everything(self, ensure_ready: bool = True) -> None:
            pool = self._pool
            for key in [k for k, p in _POOLS.items() if p is pool]:
                _close_pool(_POOLS.pop(key))
            self._pool = None
            self.reset_batch_stats()
            if ensure_ready:
                self.configure(
                    n_jobs=self.parallel.n_jobs,
                    parallel=self.parallel,
                    **self.parallel._backend_kwargs,
                )

    return SharedPoolBackend


def _close_pool(pool: Any) -> None:
    pool.close()
    pool.terminate()  # joins its workers


def close_fold_pools() -> None:
    """End the pools `fold_workers` started in this process: at the end of a stage's fits
    (`pipeline.compute.training_pool`), else when the stage exits (atexit)."""
    while _POOLS:
        _close_pool(_POOLS.popitem()[1])


def join_stage(group: int) -> None:
    """In a fold worker forked from the runner's fork server (not a child of its stage): join
    the stage's process group, so that stopping the stage (its caller gone) stops its workers
    too, and die with the fork server, which exits with the runner. A worker that finds its
    stage already gone exits."""
    try:
        os.setpgid(0, group)
        os.kill(group, 0)
    except OSError:
        os._exit(1)
    die_with_parent()


def fills_cores(n_jobs: int | None, cores: int) -> bool:
    """Whether joblib's `n_jobs` parallel workers would run one thread each (and there are
    several): the case the fork server's single-threaded workers reproduce exactly."""
    jobs = 1 if n_jobs is None else n_jobs if n_jobs > 0 else max(cores + 1 + n_jobs, 1)
    return jobs > 1 and cores // jobs <= 1


def idle_seconds() -> float:
    """How long a runner waits for work before it exits: `MLOPS_RUNNER_IDLE_SECONDS`, else
    `IDLE_SECONDS` (also for a value that is not a positive number: a runner never stays)."""
    try:
        value = float(os.environ.get(IDLE_ENV, IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS
    return value if 0 < value < float("inf") else IDLE_SECONDS


def freeze_heap() -> None:
    """Move everything the runner has loaded (the preloaded libraries' millions of objects)
    out of the cyclic garbage collector's reach, once, before any stage is forked.

    Why: a stage forked from the runner inherits that heap, and every full collection in the
    stage walks all of it: joblib's process backend calls `gc.collect()` before each pool
    it starts (twice per training stage, about 0.25 s each), and the collector's own full
    passes do the same. Frozen objects are still alive and still reference-counted; they
    are only never scanned (nor freed by the collector: the runner's own preloaded modules,
    which live as long as it does). Objects a stage makes are collected as usual, so the
    stage's results are the same."""
    import gc

    gc.collect()
    gc.freeze()


def serve(path: Path) -> None:
    """Accept stage requests until idle (`idle_seconds`); one forked child per request."""
    import importlib
    import selectors

    idle = idle_seconds()

    for name in PRELOAD:
        importlib.import_module(name)
    _start_forkserver()
    freeze_heap()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    listener.listen(64)
    tmp.replace(path)  # appear only when ready
    inode = path.stat().st_ino
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    last_work = time.monotonic()
    try:
        while waiting or time.monotonic() - last_work < idle:
            for key, _ in selector.select(timeout=0.02):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    pid = _accept(conn, waiting)
                    if pid is not None:
                        selector.register(conn, selectors.EVENT_READ, pid)
                    last_work = time.monotonic()
                else:  # a caller sends nothing after its request: this is it going away
                    selector.unregister(key.fileobj)
                    _caller_gone(key.fileobj, key.data)  # type: ignore[arg-type]
            _reap(waiting, selector)
            if waiting:
                last_work = time.monotonic()
    finally:
        if path.exists() and path.stat().st_ino == inode:  # not a newer runner's
            path.unlink(missing_ok=True)
        listener.close()


def _accept(conn: socket.socket, waiting: dict[int, socket.socket]) -> int | None:
    """Read a request and fork its stage; the stage's pid, None for a broken request."""
    try:
        conn.settimeout(10)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        while not data.endswith(b"\n"):
            more = conn.recv(1 << 20)
            if not more:
                raise ConnectionError("truncated request")
            data += more
        request = json.loads(data)
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return None
    runner = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(conn, request, fds, runner)
    with contextlib.suppress(OSError):  # the child does the same: whichever runs first
        os.setpgid(pid, pid)
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(f"{pid}\n".encode())
    waiting[pid] = conn
    return pid


def _caller_gone(conn: socket.socket, pid: int) -> None:
    """The caller's end of `conn` is readable: EOF means it went away (killed, or its parent
    `dvc` was); then its stage and the stage's fold workers are killed, never left to write
    outputs for a run that was stopped."""
    try:
        data = conn.recv(1, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _reap(waiting: dict[int, socket.socket], selector: Any) -> None:
    for pid in list(waiting):
        # See that it exited without reaping it yet: while it is a zombie its process group
        # cannot be taken by another process, so what it left behind (fold workers) can be
        # killed safely by group before the pid is released.
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            continue
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        conn = waiting.pop(pid)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with contextlib.suppress(OSError):
            conn.sendall(f"{code}\n".encode())
        conn.close()


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]))
        return
    if len(sys.argv) < 2:
        print("usage: python -m pipeline.run MODULE [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    module, argv = sys.argv[1], sys.argv[2:]
    if not module.startswith("pipeline."):
        print(f"refusing to run {module!r}: only pipeline stage modules", file=sys.stderr)
        raise SystemExit(2)
    die_with_parent()  # the caller (dvc) killed: this stage stops, wherever it runs
    status = run_remote(module, argv)
    if status is None:
        run_local(module, argv)
        return
    raise SystemExit(status)


if __name__ == "__main__":
    main()
