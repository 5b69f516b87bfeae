"""`mlops sync --target T [--watch]`: the reconciler, pull-based as Argo CD is.

The serving machine holds a clone of the repository (the *deployment checkout*) in which
`mlops serve` runs and watches `deploy/<target>.json`. One reconciliation:

1. `git fetch` the followed branch, and refuse a checkout that cannot simply follow it: one
   with local commits (diverged, or ahead) or with changes to tracked files. Nothing is merged
   and nothing is discarded: the deployment checkout is not a place to edit, and a person has to
   look at what someone did there;
2. read the declared release from the *fetched* commit's `deploy/<target>.json` (and, during
   a rollout, its candidate: both bundles are staged the same way), bring its bundle pointer
   (`bundles/<id>.dvc`, and `bundles/.gitignore`) of that commit into the checkout, `dvc pull`
   the bundle from the DVC remote and verify its digest against the record: the bundle is on
   disk *before* the desired state changes, so the service never sees a release it cannot
   load (a failed pull or a digest mismatch restores both paths, and the checkout stays where
   it was);
3. fast-forward the checkout to the fetched commit, which changes `deploy/<target>.json` and
   makes the service swap (its watcher polls the file);
4. ask the service `GET /version` until it serves the declared release and bundle digest (and
   the declared rollout step: candidate, digest, step and weight):
   "in sync", or after the timeout "out of sync" ("unreachable" when it never answered).

Everything it changes is what git and DVC already hold; it never writes desired state itself.
With `apply=False` (`mlops sync --check`) it fetches and compares only: what the followed
branch declares against what the service runs, and what a sync would do. Without a remote
(`--no-fetch`) it reconciles the working copy: pull the bundle its record names and wait.

git and DVC run through `pipeline.vcs` and the service sits behind a small seam (`Live`), so
unit tests use stand-ins for the service and the integration test runs the real thing against
a bare repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import vcs
from pipeline.bundle_format import verify
from pipeline.deploy.live import TIMEOUT_SECONDS, read_version, serves_record
from pipeline.errors import ArtifactError, MlopsError, ToolError
from pipeline.journal import Pending, pending
from pipeline.paths import BUNDLES_GITIGNORE, bundle_pointer, release_path, released_bundle
from pipeline.release_record import ReleaseRecord, parse_record, read_record

Live = Callable[[], dict[str, Any] | None]
IN_SYNC, OUT_OF_SYNC, UNREACHABLE = "in sync", "out of sync", "unreachable"
NO_SERVICE = "no service"  # a target without a service (batch): its checkout is all there is
FAILING = (OUT_OF_SYNC, UNREACHABLE)
POLL_SECONDS = 0.2
GITIGNORE = BUNDLES_GITIGNORE.as_posix()


@dataclass
class SyncResult:
    """One reconciliation's outcome; `commit` is the followed branch's (None: working copy)."""

    target: str
    declared: str | None
    live: str | None
    state: str  # in sync | out of sync | unreachable | no service
    commit: str | None = None
    actions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state not in FAILING

    def line(self) -> str:
        did = f" ({'; '.join(self.actions)})" if self.actions else ""
        return (
            f"{self.target}: {self.state}: declared {self.declared or 'no release'}, "
            f"live {self.live or '-'}{did}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ git, dvc
def fetch(root: Path, remote: str, branch: str) -> str:
    """Fetch the followed branch; returns the commit it points to."""
    try:
        vcs.git(root, "fetch", "--quiet", remote, branch)
    except ToolError as exc:
        raise ToolError(
            f"cannot fetch {remote}/{branch}: {exc}",
            hint=f"check `git remote -v` in {root} and the network; `--no-fetch` reconciles "
            "the working copy only",
        ) from exc
    return vcs.git(root, "rev-parse", "FETCH_HEAD").stdout.strip()


def check_checkout(root: Path, commit: str) -> int:
    """Refuse a checkout that cannot fast-forward to `commit` cleanly; returns how many commits
    it is behind. Checked before anything is touched, so a refusal changes nothing."""
    dirty = vcs.git(root, "status", "--porcelain", "--untracked-files=no").stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    if changed:
        shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        raise MlopsError(
            f"{root}: the deployment checkout has local changes ({shown}); refusing to sync",
            hint="the deployment checkout changes only by `mlops sync`: commit the change "
            "through a pull request, then `git checkout -- <file>` here",
        )
    if not vcs.git_ok(root, "merge-base", "--is-ancestor", "HEAD", commit):
        head = vcs.git(root, "rev-parse", "--short=12", "HEAD").stdout.strip()
        raise MlopsError(
            f"{root}: the deployment checkout has diverged from the followed branch "
            f"(HEAD {head} is not an ancestor of {commit[:12]}); refusing to merge",
            hint="the deployment checkout must not carry local commits: push them through a "
            "pull request, then reset it to the followed branch "
            "(`git reset --hard <remote>/<branch>`)",
        )
    return int(vcs.git(root, "rev-list", "--count", f"HEAD..{commit}").stdout.strip())


def desired_record(root: Path, commit: str, target: str) -> ReleaseRecord:
    """The release record `target` has in `commit` (checked like deploy/<target>.json)."""
    path = release_path(target).as_posix()
    source = f"{commit[:12]}:{path}"
    proc = vcs.git(root, "show", f"{commit}:{path}", check=False)
    if proc.returncode != 0:
        raise ArtifactError(
            f"{source} does not exist: the followed branch declares no release for {target}",
            hint="check --target and --branch; every declared target commits its release record",
        )
    return parse_record(proc.stdout, source, target)


def bundle_present(root: Path, record: ReleaseRecord) -> bool:
    """Is the declared bundle on disk, complete and the one the record names?"""
    try:
        verify(root / released_bundle(str(record.bundle_id)), record.bundle_sha256)
    except ArtifactError:
        return False
    return True


def stage_bundle(
    root: Path, commit: str | None, record: ReleaseRecord, dvc_remote: str | None = None
) -> list[str]:
    """Make the declared bundle present and verified, before the checkout moves; returns what
    was done. On failure the pointer paths are restored, so the checkout is as it was."""
    if record.release is None or bundle_present(root, record):
        return []
    pointer = bundle_pointer(str(record.bundle_id)).as_posix()
    paths = [pointer]
    if commit is not None:
        if not vcs.git_ok(root, "cat-file", "-e", f"{commit}:{pointer}"):
            raise ArtifactError(
                f"{record.release}: {commit[:12]} has no {pointer}",
                hint="commit the pointer that `mlops release` wrote together with the release",
            )
        if vcs.git_ok(root, "cat-file", "-e", f"{commit}:{GITIGNORE}"):
            paths.append(GITIGNORE)  # DVC would otherwise edit the checkout's copy
        vcs.git(root, "checkout", commit, "--", *paths)
    elif not (root / pointer).is_file():
        raise ArtifactError(
            f"{record.release}: no {pointer} in the working copy",
            hint="commit the pointer that `mlops release` wrote together with the release",
        )
    pull = ["pull", "--quiet", "--force", *(["--remote", dvc_remote] if dvc_remote else [])]
    try:
        vcs.dvc(root, *pull, pointer)
        verify(root / released_bundle(str(record.bundle_id)), record.bundle_sha256)
    except BaseException:
        if commit is not None:
            vcs.git(root, "restore", "--source=HEAD", "--staged", "--worktree", "--", *paths)
        raise
    return [f"pulled bundle {record.bundle_id}"]


def fast_forward(root: Path, commit: str) -> bool:
    """Move the checkout to `commit` (already checked to be a fast-forward)."""
    if vcs.git(root, "rev-parse", "HEAD").stdout.strip() == commit:
        return False
    vcs.git(root, "merge", "--ff-only", "--quiet", commit)
    return True


# ---------------------------------------------------------------------------- the service
def http_live(url: str, timeout: float = TIMEOUT_SECONDS) -> Live:
    """Ask the service at `url` what it serves (`pipeline.deploy.live.read_version`)."""
    return lambda: read_version(url, timeout=timeout)


def matches(record: ReleaseRecord, seen: dict[str, Any]) -> bool:
    """The service runs the declared release *and* its bytes (same id, other bundle: no), and
    the declared rollout step, if any."""
    return serves_record(seen, record)


def wait_for(
    live: Live,
    record: ReleaseRecord,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, str | None]:
    """Poll the service until it serves `record` or `timeout` passes: (state, live release).
    A timeout of 0 asks once."""
    deadline = clock() + timeout
    while True:
        seen = live()
        if seen is not None and matches(record, seen):
            return IN_SYNC, seen.get("release")
        if clock() >= deadline:
            return (UNREACHABLE, None) if seen is None else (OUT_OF_SYNC, seen.get("release"))
        sleep(POLL_SECONDS)


# -------------------------------------------------------------------------- reconciling
def sync_once(
    root: Path,
    target: str,
    *,
    remote: str | None,
    branch: str,
    live: Live | None,
    timeout: float,
    dvc_remote: str | None = None,
    apply: bool = True,
) -> SyncResult:
    """One reconciliation (see the module docstring); `apply=False` changes nothing."""
    actions: list[str] = []
    commit = fetch(root, remote, branch) if remote else None
    if commit is not None:
        behind = check_checkout(root, commit)
        record = desired_record(root, commit, target)
    else:
        behind = 0
        record = read_record(root / release_path(target), target)
    rollout = record.running_rollout
    if apply:
        actions += stage_bundle(root, commit, record, dvc_remote)
        if rollout is not None:  # the candidate is on disk before the record names it
            actions += stage_bundle(root, commit, rollout.candidate, dvc_remote)
        if commit is not None and fast_forward(root, commit):
            actions.append(f"fast-forwarded {behind} commit(s) to {commit[:12]}")
    else:
        declared = [record] + ([] if rollout is None else [rollout.candidate])
        for one in declared:
            if one.release is not None and not bundle_present(root, one):
                actions.append(f"would pull bundle {one.bundle_id}")
        if behind and commit is not None:
            actions.append(f"would fast-forward {behind} commit(s) to {commit[:12]}")
    if live is None:
        return SyncResult(target, record.release, None, NO_SERVICE, commit, actions)
    state, seen = wait_for(live, record, timeout if apply else 0)
    return SyncResult(target, record.release, seen, state, commit, actions)


def run_sync(
    root: Path,
    target: str,
    *,
    remote: str | None,
    branch: str,
    url: str | None,
    watch: bool = False,
    interval: float = 60.0,
    timeout: float = 60.0,
    dvc_remote: str | None = None,
    apply: bool = True,
    emit: Callable[[SyncResult | MlopsError], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    """One reconciliation (errors propagate), or with `watch` one every `interval` seconds
    until interrupted: each result is emitted when it differs from the previous one or did
    something (the same state again is not news), errors are emitted and retried, and the
    service keeps serving throughout."""
    live = http_live(url) if url else None

    def once() -> SyncResult:
        return sync_once(
            root,
            target,
            remote=remote,
            branch=branch,
            live=live,
            timeout=timeout,
            dvc_remote=dvc_remote,
            apply=apply,
        )

    if not watch:
        result = once()
        emit(result)
        return result
    last: str | None = None
    while True:
        outcome: SyncResult | MlopsError
        try:
            outcome = once()
        except MlopsError as exc:
            outcome = exc
        if isinstance(outcome, SyncResult):
            key = f"{outcome.state} {outcome.declared} {outcome.live}"
            news = key != last or bool(outcome.actions)  # a round that did something: always
        else:
            key = str(outcome)
            news = key != last
        if news:
            emit(outcome)
        last = key
        sleep(interval)


def dumps(result: SyncResult) -> str:
    return json.dumps(result.to_dict(), sort_keys=True)


# ------------------------------------------------------------------------------ verifying
@dataclass
class Verified:
    """One release record checked: its bundle's pointer is committed and the bytes match."""

    target: str
    release: str | None
    problems: list[str] = field(default_factory=list)


def _mixed_targets(root: Path, targets: list[str], interrupted: Pending) -> list[str]:
    """The targets an interrupted command was moving together, split into those it had moved
    and those it had not: the mixed state `verify` must never pass."""
    moving = [t for t in targets if release_path(t).as_posix() in interrupted.paths]
    moved = [t for t in moving if release_path(t).as_posix() in interrupted.changed]
    if not moved or len(moved) == len(moving):
        return []

    def at(target: str) -> str:
        try:
            return str(read_record(root / release_path(target), target).release or "no release")
        except ArtifactError:
            return "an unreadable record"

    def listed(names: list[str]) -> str:
        return ", ".join(f"{t} ({at(t)})" for t in names)

    still = [t for t in moving if t not in moved]
    return [
        f"mixed state: targets released together are at different releases: "
        f"{listed(moved)} moved, {listed(still)} not yet"
    ]


def verify_releases(
    root: Path, targets: list[str], *, pull: bool, dvc_remote: str | None = None
) -> list[Verified]:
    """Check every release record in `targets` (read with the same rules as everywhere else);
    with `pull`, fetch each released bundle with `dvc pull` first. Problems are collected for
    every target, not just the first, so one run shows everything to fix. A release (or
    rollback, or maintenance) that was interrupted leaves the checkout in a mixed state: every
    target fails until a retry rolls it back (`pipeline.journal`)."""
    interrupted = pending(root)
    mixed = (
        []
        if interrupted is None
        else [
            f"{interrupted.describe()}: run `{interrupted.command}` again (it rolls that back "
            "first, then completes)",
            *_mixed_targets(root, targets, interrupted),
        ]
    )
    out = []
    for target in targets:
        try:
            record = read_record(root / release_path(target), target)
        except ArtifactError as exc:
            out.append(Verified(target, None, [*mixed, exc.render()]))
            continue
        checked = Verified(target, record.release, list(mixed))
        out.append(checked)
        if record.release is None:
            continue
        bundle = released_bundle(str(record.bundle_id))  # = bundle.path (read_record checks)
        pointer = bundle_pointer(str(record.bundle_id)).as_posix()
        if not (root / pointer).is_file():
            checked.problems.append(f"{pointer} is missing: commit it with the release")
            continue
        try:
            if pull:
                remote = ["--remote", dvc_remote] if dvc_remote else []
                vcs.dvc(root, "pull", "--quiet", *remote, pointer)
            verify(root / bundle, record.bundle_sha256)
        except MlopsError as exc:
            checked.problems.append(exc.render())
    return out
