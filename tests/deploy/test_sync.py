"""`mlops sync`: the reconciler, run for real (a bare git repository as origin, a local DVC
remote, a development clone that releases, a serving clone running `mlops serve`), and its
pieces with stand-ins for the service."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.deploy import sync
from pipeline.errors import ArtifactError, ConfigError, MlopsError
from pipeline.release_record import ReleaseRecord
from tests.conftest import BIN, dvc, env, mlops, sh
from tests.deploy.conftest import commit, fabricate_release, record, report
from tests.deploy.serving import (
    free_port,
    http_get,
    metric,
    parse_metrics,
    tls,
    wait_for,
)

SHA = "ab" * 32
RELEASE = f"r0002-{SHA[:16]}"


def _record(release: str | None = RELEASE, sha: str = SHA) -> ReleaseRecord:
    data: dict[str, Any] = {"target": "local", "release": release}
    if release is not None:
        data["bundle"] = {"id": sha[:16], "sha256": sha, "path": f"bundles/{sha[:16]}"}
    return ReleaseRecord("local", release, data)


# ------------------------------------------------------------------ the service, stood in
class Clock:
    """A clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("answers", "state", "live"),
    [
        ([{"release": RELEASE, "bundle": {"sha256": SHA}}], "in sync", RELEASE),
        # the swap happens while we wait
        (
            [{"release": "r0001-x", "bundle": {"sha256": "0" * 64}}] * 3
            + [{"release": RELEASE, "bundle": {"sha256": SHA}}],
            "in sync",
            RELEASE,
        ),
        # same release id, other bytes: never in sync
        ([{"release": RELEASE, "bundle": {"sha256": "0" * 64}}], "out of sync", RELEASE),
        ([None], "unreachable", None),
    ],
)
def test_wait_for_judges_release_and_bytes(
    answers: list[dict[str, Any] | None], state: str, live: str | None
) -> None:
    clock = Clock()
    seen = iter(answers)
    last: list[dict[str, Any] | None] = [None]

    def ask() -> dict[str, Any] | None:
        last[0] = next(seen, last[0])
        return last[0]

    assert sync.wait_for(ask, _record(), 5.0, sleep=clock.sleep, clock=clock) == (state, live)
    if state != "in sync":
        assert clock.now >= 5.0  # it waited for the whole timeout before giving up


def test_wait_for_no_release_matches_an_empty_service() -> None:
    clock = Clock()
    answer = {"release": None, "bundle": None}
    assert sync.wait_for(lambda: answer, _record(None), 0, sleep=clock.sleep, clock=clock) == (
        "in sync",
        None,
    )


def test_watch_reports_each_change_once_and_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--watch: identical rounds print nothing new, an error is reported and retried."""
    rounds: list[sync.SyncResult | MlopsError] = [
        sync.SyncResult("local", RELEASE, "r0001-x", "out of sync"),
        sync.SyncResult("local", RELEASE, "r0001-x", "out of sync"),
        MlopsError("cannot fetch origin/main"),
        sync.SyncResult("local", RELEASE, RELEASE, "in sync", actions=["pulled bundle x"]),
        sync.SyncResult("local", RELEASE, RELEASE, "in sync"),
    ]

    def once(*args: Any, **kwargs: Any) -> sync.SyncResult:
        outcome = rounds.pop(0)
        if isinstance(outcome, MlopsError):
            raise outcome
        return outcome

    def sleep(seconds: float) -> None:
        assert seconds == 7
        if not rounds:
            raise KeyboardInterrupt

    monkeypatch.setattr(sync, "sync_once", once)
    emitted: list[Any] = []
    with pytest.raises(KeyboardInterrupt):
        sync.run_sync(
            tmp_path, "local", remote="origin", branch="main", url=None, watch=True,
            interval=7, emit=emitted.append, sleep=sleep,
        )  # fmt: skip
    shown = [e.state if isinstance(e, sync.SyncResult) else str(e) for e in emitted]
    assert shown == ["out of sync", "cannot fetch origin/main", "in sync"]


@pytest.mark.parametrize(
    ("target", "url"),
    [("local", "http://127.0.0.1:8000"), ("edge", "http://10.0.0.5:9000"), ("batch", None)],
)
def test_the_service_url_comes_from_the_targets_serve_settings(
    target: str, url: str | None
) -> None:
    from pipeline.cli_sync import service_url

    params = {
        "deploy": {
            "targets": {
                "local": {"kind": "service", "serve": {"host": "0.0.0.0", "port": 8000}},
                "edge": {"kind": "service", "serve": {"host": "10.0.0.5", "port": 9000}},
                "batch": {"kind": "batch"},
            }
        }
    }
    assert service_url(params, target) == url
    with pytest.raises(ConfigError, match="no deployment target 'nope'; declared: local"):
        service_url(params, "nope")


# --------------------------------------------------------------- a checkout, git only
@pytest.fixture
def checkouts(tmp_path: Path) -> tuple[Path, Path]:
    """(development clone, deployment clone) of a bare origin whose deploy/local.json
    declares no release: enough for the refusals, which happen before DVC is asked."""
    origin = tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    dev = tmp_path / "dev"
    (dev / "deploy").mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], dev)
    sh(["git", "remote", "add", "origin", str(origin)], dev)
    (dev / "deploy/local.json").write_text('{"release": null, "target": "local"}\n')
    (dev / "README.md").write_text("x\n")
    commit(dev, "first")
    sh(["git", "push", "-q", "origin", "main"], dev)
    serving = tmp_path / "serving"
    sh(["git", "clone", "-q", str(origin), str(serving)], tmp_path)
    (dev / "README.md").write_text("y\n")
    commit(dev, "second")
    sh(["git", "push", "-q", "origin", "main"], dev)
    return dev, serving


def _head(root: Path) -> str:
    return sh(["git", "rev-parse", "HEAD"], root).stdout.strip()


def test_sync_without_a_service_fast_forwards(checkouts: tuple[Path, Path]) -> None:
    dev, serving = checkouts
    result = sync.sync_once(serving, "local", remote="origin", branch="main", live=None, timeout=0)
    assert result.state == "no service" and result.ok
    assert result.actions == [f"fast-forwarded 1 commit(s) to {_head(dev)[:12]}"]
    assert _head(serving) == _head(dev)


@pytest.mark.parametrize("local", ["commit", "edit"])
def test_a_diverged_or_edited_checkout_is_refused_and_left_alone(
    checkouts: tuple[Path, Path], local: str
) -> None:
    _, serving = checkouts
    (serving / "README.md").write_text("edited on the server\n")
    if local == "commit":
        commit(serving, "a local commit")
    before = _head(serving)
    message = "has diverged from the followed branch" if local == "commit" else "local changes"
    with pytest.raises(MlopsError, match=message):
        sync.sync_once(serving, "local", remote="origin", branch="main", live=None, timeout=0)
    assert _head(serving) == before
    assert (serving / "README.md").read_text() == "edited on the server\n"


def test_missing_release_record_on_the_branch_is_an_error(checkouts: tuple[Path, Path]) -> None:
    _, serving = checkouts
    with pytest.raises(ArtifactError, match=r"deploy/batch.json does not exist"):
        sync.sync_once(serving, "batch", remote="origin", branch="main", live=None, timeout=0)


# ------------------------------------------------------------------- the real thing
@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    """Start `mlops serve` in a checkout on 127.0.0.1 (ephemeral port); stopped on exit."""
    started: list[subprocess.Popen[str]] = []

    def start(root: Path) -> str:
        port = free_port()
        with (tmp_path / "serve.log").open("w") as log:  # the child keeps its own handle
            proc = subprocess.Popen(
                [str(BIN / "mlops"), "serve", "--target", "local", "--host", "127.0.0.1",
                 "--port", str(port), "--poll-seconds", "0.1", "--log-level", "warning"],
                cwd=root, env=env(), stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return http_get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, interval=0.2)
        return url

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


class HealthProbe:
    """Polls /health in a thread while a sync runs: records every load error it sees."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.errors: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=2, verify=tls()) as client:
            while not self._stop.wait(0.03):
                health = client.get(f"{self.url}/health").json()
                self.samples += 1
                if health["error"] is not None:
                    self.errors.append(health["error"])

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def version(url: str) -> dict[str, Any]:
    return dict(http_get(f"{url}/version", timeout=5).json())


def push(dev: Path) -> None:
    """What CI does after a release: artifacts to the DVC remote, the commit to origin."""
    dvc("push", "--quiet", cwd=dev)
    sh(["git", "push", "-q", "origin", "main"], dev)


@pytest.mark.long(30)  # seconds on CI: handed out early
@pytest.mark.integration
def test_sync_pulls_the_new_bundle_then_fast_forwards_and_the_service_swaps(
    project: Path, tmp_path: Path, service: Any
) -> None:
    dev = project
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    sh(["git", "remote", "add", "origin", str(origin)], dev)
    dvc("remote", "add", "--default", "storage", str(storage), cwd=dev)
    commit(dev, "the DVC remote")

    # r0001: a weak model, released and pushed; the serving clone pulls and serves it
    first = fabricate_release(dev, "local")
    push(dev)
    serving = tmp_path / "serving"
    sh(["git", "clone", "-q", str(origin), str(serving)], tmp_path)
    dvc("pull", "--quiet", f"bundles/{first[6:]}.dvc", cwd=serving)
    url = service(serving)
    assert version(url)["release"] == first

    # r0002: the template's champion beats it at the gate; released, committed, pushed
    dvc("repro", "deploy@local", cwd=dev)
    assert report(dev, "local")["decision"] == "propose"
    mlops("release", "--target", "local", cwd=dev)
    second = record(dev, "local")
    commit(dev, f"release {second['release']}")
    push(dev)
    bundle_id = second["bundle"]["id"]
    assert second["parent"] == first and not (serving / "bundles" / bundle_id).exists()

    # before: the branch declares r0002, the service runs r0001
    check = mlops("sync", "--target", "local", "--url", url, "--check", cwd=serving, check=False)
    assert check.returncode == 1, check.stderr
    assert f"local: out of sync: declared {second['release']}, live {first}" in check.stdout
    assert f"would pull bundle {bundle_id}" in check.stdout
    assert json.loads((serving / "deploy/local.json").read_text())["release"] == first

    # sync: fetch, pull the bundle, fast-forward; the service swaps without a load error
    with HealthProbe(url) as probe:
        out = mlops("sync", "--target", "local", "--url", url, "--timeout", "60", cwd=serving)
    assert f"local: in sync: declared {second['release']}, live {second['release']}" in out.stdout
    assert f"pulled bundle {bundle_id}" in out.stdout and "fast-forwarded" in out.stdout
    assert probe.samples > 0 and probe.errors == []
    samples = parse_metrics(http_get(f"{url}/metrics", timeout=5).text)
    assert metric(samples, "mlops_release_load_failures_total") == 0
    live = version(url)
    assert live["release"] == second["release"]
    assert live["bundle"] == {"id": bundle_id, "sha256": second["bundle"]["sha256"]}
    assert _head(serving) == _head(dev)
    clean = sh(["git", "status", "--porcelain", "--untracked-files=no"], serving).stdout
    assert clean == ""

    # again: nothing to do, still in sync (exit 0); --json for machines
    again = mlops("sync", "--target", "local", "--url", url, "--json", cwd=serving)
    assert json.loads(again.stdout) == {
        "target": "local",
        "declared": second["release"],
        "live": second["release"],
        "state": "in sync",
        "commit": _head(dev),
        "actions": [],
    }

    # a local commit in the deployment checkout is refused, and nothing moves
    (serving / "README.local").write_text("hotfix\n")
    commit(serving, "a hotfix on the server")
    refused = mlops("sync", "--target", "local", "--url", url, cwd=serving, check=False)
    assert refused.returncode == 2
    assert "the deployment checkout has diverged from the followed branch" in refused.stderr
    assert "hint: the deployment checkout must not carry local commits" in refused.stderr
    assert version(url)["release"] == second["release"]

    # mlops verify: the declared releases' bundles match their records; a damaged bundle is
    # found (exit 1), and --pull restores it from the DVC remote
    assert "local: " + second["release"] + " verified" in mlops("verify", cwd=serving).stdout
    (serving / "bundles" / bundle_id / "model.skops").unlink()
    damaged = mlops("verify", cwd=serving, check=False)
    assert damaged.returncode == 1 and f"local: FAILED {second['release']}" in damaged.stdout
    assert "model.skops: missing or changed" in damaged.stdout
    assert "batch: no release" in damaged.stdout
    mlops("verify", "--pull", cwd=serving)
