"""Shared fixtures: the real conf/ composed once, and a real DVC project reproduced once.

Integration tests run the real `dvc repro` in a temporary git repository. Reproducing from
scratch costs several seconds of interpreter start-up per stage, so one session builds a
template project (fast experiment) and every test copies it (`project`) or, when it writes
nothing, reads it in place (`template`); with pytest-xdist the first worker builds it under a
file lock and the others reuse it (`build_once`, which other session-wide projects use too).

`mlops(...)` and `dvc(...)` run the command in this process (`pipeline.cli.main`,
`dvc.cli.main`): a test of a command's exit code and output does not pay one to three seconds
of imports per call. Tests of the process itself (signals, the installed entry point, a server)
call `mlops_process(...)`, or start `BIN / "dvc"`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from _pytest.pathlib import LOCK_TIMEOUT, cleanup_numbered_dir
from dvc import cli as dvc_cli  # imported now, not inside a call's capture: see `_dvc_main`

from pipeline.io import dumps_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a project copy needs: the tracked sources, not the developer's outputs or caches.
PROJECT_ITEMS = (
    "conf",
    "pipeline",
    "dvc.yaml",
    "params.yaml",
    "requirements",
    "pyproject.toml",
    ".dvcignore",
    ".gitignore",
    "data/external",
    "scripts",
    "monitor",  # monitor/archive: retired windows' verdicts, a dependency of `monitor`
)


# What every process of the session runs with, the test workers included: a test that calls
# a command's code directly (`cli.main`, `pipeline.vcs`) starts `dvc` and stages from the
# worker's own environment. Without these, each such `dvc` forked DVC's analytics daemon (a
# network call from a test, and a third of a second of CPU each), and a stage started that way
# needed a stage runner of its own (the runner is keyed by PYTHONHASHSEED: pipeline/run.py).
SESSION_ENV = {"DVC_NO_ANALYTICS": "1", "PYTHONHASHSEED": "0"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(SESSION_ENV)
    _write_bytecode()
    # A worker's heap holds DVC, Hydra, pandas, scikit-learn, FastAPI and every test module
    # (millions of objects). With Python's default thresholds (700, 10, 10) it ran 40-50 full
    # collections a session, 0.2-0.4 s each: about 20 s of each worker's CPU. Young objects
    # here mostly die by reference count, so a later first collection promotes few of them
    # and full collections become rare (measured on tests/deploy, monitor and maintain: GC
    # 11.4 -> 2.9 s, the workers' largest RSS 434 -> 442 MB).
    gc.set_threshold(50_000, 20, 10)


def _write_bytecode() -> None:
    """With PYTHONDONTWRITEBYTECODE set (as on this project's machines), every process the
    session starts (two workers, hundreds of `mlops`, `dvc` and stage processes) compiled this
    package from source, and each worker re-wrote every test module (bench/README.md, "The
    test suite"). The session writes bytecode as Python does by default, beside the sources
    (`__pycache__/`, git-ignored), for itself and, through the environment, every process it
    starts. Not into a pycache prefix: Python then looks for every module's bytecode there
    only, and a fresh venv's first session compiled all of its libraries again (measured: a
    fresh run 1.08x slower)."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        sys.dont_write_bytecode = False


_early_cleanup: list[threading.Thread] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Start deleting, beside the tests, the earlier sessions' directories that pytest would
    delete once they end (it keeps the last `tmp_path_retention_count`), with pytest's own
    function and arguments. A session leaves some 40,000 files (~500 MB); deleted at the end,
    the machine sat mostly idle for 3 to 17 s waiting on the disk; now the tests' CPU work
    hides it, and pytest's own pass at the end finds nothing left (a session killed midway
    leaves them to the next one, or to pytest)."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.basetemp:
        return  # xdist workers live in the controller's directory; --basetemp is pytest's
    policy = config.getini("tmp_path_retention_policy")
    keep = 0 if policy == "none" else int(config.getini("tmp_path_retention_count"))
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    base = factory.getbasetemp()  # this session's (xdist gives workers folders inside it)
    thread = threading.Thread(
        target=cleanup_numbered_dir,
        args=(base.parent, "pytest-", keep, base.stat().st_mtime - LOCK_TIMEOUT),
        name="earlier-sessions-cleanup",
        daemon=True,
    )
    thread.start()
    _early_cleanup.append(thread)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    for thread in _early_cleanup:
        thread.join()  # before pytest's own pass over the same directories


def env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's venv first on PATH, no analytics."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.update(SESSION_ENV)
    out.setdefault("GIT_AUTHOR_NAME", "test")
    out.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    out.setdefault("GIT_COMMITTER_NAME", "test")
    out.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    return out


def sh(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    timeout: float = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on an unexpected failure show everything it printed."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=env(),
        text=True,
        capture_output=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n"
            f"{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def mlops_process(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installed `mlops` entry point in a process of its own."""
    return sh([str(BIN / "mlops"), *args], cwd, check=check)


def mlops(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`mlops ARGS` in this process, as the entry point runs it (`pipeline.cli.main`)."""
    from pipeline import cli

    return _in_process("mlops", cli.main, args, cwd, check)


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`dvc ARGS` in this process (`dvc.cli.main`, as DVC's own tests call it): a DVC command
    costs its work, not half a second of imports. The stages a `dvc repro` runs are still
    processes of their own. Tests of the process itself (a kill, a signal) start `BIN / "dvc"`
    with `sh` or `subprocess`."""
    return _in_process("dvc", _dvc_main, args, cwd, check)


def _dvc_main(argv: list[str]) -> int | None:
    """DVC's entry point, its log handlers pointed at this call's captured streams. DVC binds
    them (and colorama its wrappers) to whatever sys.stdout and sys.stderr are when it is first
    imported, so this module imports it at collection, outside any call's capture: tests that
    use DVC's API directly (`Repo.init`) then log to the session's streams, never to a closed
    one. DVC_TEST is set as DVC's own tests set it: `--json` output goes to the current
    sys.stdout, not to colorama's stream from import time (and no update check, no
    analytics)."""
    import logging

    os.environ["DVC_TEST"] = "1"  # `_within` restores the environment

    handlers = {
        handler
        for name in ("dvc", "dvc_objects", "dvc_data")
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler)
    }
    saved = {handler: handler.stream for handler in handlers}
    for handler in handlers:
        handler.stream = sys.stderr if handler.level >= logging.WARNING else sys.stdout
    try:
        return int(dvc_cli.main(argv))
    finally:
        for handler, stream in saved.items():
            handler.stream = stream


def _in_process(
    name: str,
    main: Callable[[list[str]], int | None],
    args: Sequence[str],
    cwd: Path,
    check: bool,
) -> subprocess.CompletedProcess[str]:
    """`name ARGS` run by `main` in this process as its entry point would run it: from `cwd`,
    with `env()`, a new interpreter's warning filters, file descriptors 1 and 2 captured, so the
    output of any program the command starts (`dvc repro`, a stage) is captured too. An
    exception the command lets through exits 1 with its traceback on stderr, as the interpreter
    would."""
    code: int | str | None
    with _captured() as (out, err), _within(cwd):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        except Exception:  # noqa: BLE001 - what the interpreter does with it, exit status 1
            traceback.print_exc()
            code = 1
    if not isinstance(code, int):
        if code is not None:
            err.append(f"{code}\n")
        code = 0 if code is None else 1
    proc = subprocess.CompletedProcess([name, *args], code, "".join(out), "".join(err))
    if check and code != 0:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {code}\n--- stdout\n{proc.stdout}\n--- stderr\n"
            f"{proc.stderr}"
        )
    return proc


@contextlib.contextmanager
def _within(cwd: Path) -> Iterator[None]:
    """`cwd`, `env()` and the warning filters of a new interpreter (not pytest's, which turn
    warnings into errors), restored afterwards."""
    saved_cwd, saved_env = Path.cwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.update(env())
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()  # then CPython's defaults, each inserted in front
            for category in (ResourceWarning, ImportWarning, PendingDeprecationWarning):
                warnings.filterwarnings("ignore", category=category)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


@contextlib.contextmanager
def _captured() -> Iterator[tuple[list[str], list[str]]]:
    """Redirect file descriptors 1 and 2 (and sys.stdout/sys.stderr onto them) to temporary
    files; the lists receive what was written once the block ends."""
    out: list[str] = []
    err: list[str] = []
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(out_file.fileno(), 1)
            os.dup2(err_file.fileno(), 2)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            # line-buffered, as an interpreter's stderr is
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
            yield out, err
        finally:
            for stream in (sys.stdout, sys.stderr):
                if stream not in streams:
                    stream.close()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for file, into in ((out_file, out), (err_file, err)):
                file.seek(0)
                into.insert(0, file.read().decode("utf-8", errors="replace"))


def _ignore(directory: str, names: list[str]) -> set[str]:
    """Skip caches, and a developer's machine-local overrides (conf/local/*.yaml)."""
    skipped = {n for n in names if n == "__pycache__"}
    if Path(directory).name == "local" and Path(directory).parent.name == "conf":
        skipped |= {n for n in names if n.endswith(".yaml")}
    if Path(directory).name == "pins" and Path(directory).parent.name == "deploy":
        skipped |= {n for n in names if n.endswith(".yaml")}  # rollback pins name local releases
    return skipped


def _no_releases(dest: Path) -> None:
    """Every target starts with nothing released (the developer's releases and bundles stay
    in their checkout): deploy/<target>.json says `"release": null`, bundles/ is empty."""
    (dest / "deploy").mkdir(exist_ok=True)
    for record in sorted((ROOT / "deploy").glob("*.json")):
        (dest / "deploy" / record.name).write_text(
            dumps_json({"target": record.stem, "release": None})
        )
    (dest / "bundles").mkdir(exist_ok=True)
    (dest / "bundles" / ".gitkeep").touch()


def _no_production_windows(dest: Path) -> None:
    """data/production/ and data/feedback/ as committed: empty but for .gitkeep (the
    developer's snapshots and feedback stay in their checkout), so monitoring sees only the
    simulated windows and training only the dataset until a test adds some."""
    for folder in ("production", "feedback"):
        (dest / "data" / folder).mkdir(parents=True, exist_ok=True)
        (dest / "data" / folder / ".gitkeep").touch()
    (dest / "maintain").mkdir(exist_ok=True)
    (dest / "maintain" / "ledger.json").write_text(dumps_json({"entries": []}))


def use_fast_settings(project: Path) -> None:
    """Make the fast experiment this copy's machine-local default, so a plain `mlops compose`
    (and `dvc exp run`'s own composition) keep the fast settings."""
    fast = (project / "conf/experiment/fast.yaml").read_text()
    (project / "conf/local/default.yaml").write_text(fast)


def copy_project(dest: Path, *, link_code: bool = True) -> Path:
    """A fresh project: sources copied, `git init`, DVC initialised as committed.

    With `link_code`, `pipeline/` is a symlink to this checkout's package (the code that runs
    anyway: PYTHONPATH): every project then has the same code root, so one warm stage runner
    (pipeline/run.py, keyed by the package's real location) serves the stages of every test
    instead of each test starting its own. A test never writes into `pipeline/`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_ITEMS:
        src = ROOT / item
        if item == "pipeline" and link_code:
            (dest / item).symlink_to(src, target_is_directory=True)
        elif src.is_dir():
            shutil.copytree(src, dest / item, ignore=_ignore)
        elif src.exists():
            shutil.copy2(src, dest / item)
    _no_releases(dest)
    _no_production_windows(dest)
    shutil.copytree(
        ROOT / ".dvc",
        dest / ".dvc",
        ignore=shutil.ignore_patterns("cache", "tmp", "*.lock", "updater*"),
    )
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-q", "-m", "project"], dest)
    pack(dest)
    return dest


def pack(project: Path) -> None:
    """Pack the git objects of a project that tests copy: a commit leaves one loose file (and
    often a directory) per object, half the files of a copy, and a session writes hundreds of
    copies (and pytest deletes them three sessions later)."""
    sh(["git", "gc", "-q"], project)


def digests(
    root: Path,
    patterns: Sequence[str] = (
        "conf/**/*",
        "params.yaml",
        "data/**/*",
        "models/**/*",
        "reports/**/*",
        "dvc.lock",
    ),
) -> dict[str, str]:
    """sha256 of every file matching `patterns`: to prove a failed command changed nothing."""
    out = {}
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


READY = ".ready"  # written last by `build_once`: the build is complete


def build_once(
    name: str,
    build: Callable[[Path], None],
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
) -> Path:
    """The directory `name`, built by `build(directory)` once per session: the first xdist
    worker to ask builds it under a file lock, the others wait for it and reuse it (xdist_group
    would not do: a group runs on one worker). A build that failed is redone by the next
    worker that asks."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    target = shared / name
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / READY).exists():
            if target.exists():
                shutil.rmtree(target)
            build(target)
            (target / READY).touch()
    return target


def copy_built(source: Path, dest: Path) -> Path:
    """A private copy of a `build_once` project (git history and DVC cache included)."""
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(READY))
    return dest


def _build_template(target: Path) -> None:
    copy_project(target)
    use_fast_settings(target)
    mlops("compose", cwd=target)
    dvc("repro", cwd=target)
    sh(["git", "add", "-A"], target)
    sh(["git", "commit", "-q", "-m", "reproduced"], target)
    pack(target)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The order in which `-n 2 --dist loadgroup` hands tests out (one at a time, as workers
    free up), so that the two workers finish together: first the longest test that needs the
    reproduced template (its worker builds the template, then runs it), then every test that
    does not need the template (the other worker runs those meanwhile instead of waiting for
    the build), then the rest; within each part, the tests marked `long(seconds)` longest
    first, then the others in collection order."""

    def needs_template(item: pytest.Item) -> bool:
        return "template_project" in getattr(item, "fixturenames", ())

    def seconds(item: pytest.Item) -> float:
        mark = item.get_closest_marker("long")
        return float(mark.args[0]) if mark is not None else 0.0

    longest = max(
        (i for i in items if needs_template(i) and seconds(i) > 0), key=seconds, default=None
    )
    rest = sorted(
        (i for i in items if i is not longest),
        key=lambda i: (needs_template(i), -seconds(i)),  # stable: collection order within
    )
    items[:] = ([] if longest is None else [longest]) + rest


@pytest.fixture(scope="session")
def template_project(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A project reproduced once with the fast experiment (shared by xdist workers)."""
    return build_once("template-project", _build_template, tmp_path_factory, worker_id)


@pytest.fixture
def template(template_project: Path) -> Iterator[Path]:
    """The reproduced template itself, for a test that only reads it: no copy. Its files must
    be byte-identical after the test (checked: a test that writes uses `project`)."""
    before = tree_digest(template_project)
    yield template_project
    assert tree_digest(template_project) == before, "a read-only test changed the template"


# What reading a project may rewrite: DVC's state and locks, git's index (its stat cache).
VOLATILE = (".dvc/tmp", ".git/index")


def tree_digest(root: Path) -> str:
    """One sha256 over every file's path and bytes under `root` (.git included, `VOLATILE`
    not); a symlink counts by its target, never followed (`pipeline/` links to the package)."""
    entries = []
    for folder, dirs, files in os.walk(root):  # does not descend into linked directories
        for name in [*dirs, *files]:
            path = Path(folder, name)
            if str(path.relative_to(root)).startswith(VOLATILE):
                continue
            if path.is_symlink():
                entries.append(f"{path.relative_to(root)} -> {os.readlink(path)}")
            elif name in files:
                content = hashlib.sha256(path.read_bytes()).hexdigest()
                entries.append(f"{path.relative_to(root)} {content}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


@pytest.fixture
def project(template_project: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the reproduced template (git history and DVC cache included)."""
    yield copy_built(template_project, tmp_path / "project")


@pytest.fixture
def fresh_project(tmp_path: Path) -> Path:
    """Sources only: nothing reproduced yet."""
    return copy_project(tmp_path / "fresh")
