"""The DVC remote on a real S3 API (moto's server on 127.0.0.1, through the `dvc-s3` plugin):
`dvc push` of a reproduced project and `dvc pull` in a fresh clone (byte-equal outputs); the
workflows' remote set-up (.github/scripts/dvc_remote.sh) and publication of released bundles to
a serving remote (.github/scripts/publish_bundles.sh) against `s3://`; and `mlops sync` /
`mlops verify --pull` retrieving released bundles from it on a serving clone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, digests, dvc, env, mlops, sh
from tests.deploy.conftest import record
from tests.s3 import S3, moto_s3

pytestmark = pytest.mark.integration

OUTPUTS = ("data/**/*", "models/**/*", "bundles/**/*")  # what DVC holds, not git


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with moto_s3(tmp_path_factory.mktemp("aws")) as server:
        yield server


def _origin(dev: Path, tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    sh(["git", "remote", "add", "origin", str(origin)], dev)
    return origin


def _outputs(root: Path) -> dict[str, str]:
    return {k: v for k, v in digests(root, OUTPUTS).items() if not k.endswith(".gitkeep")}


@pytest.mark.long(15)
def test_push_to_s3_then_a_fresh_clone_pulls_the_same_bytes(
    project: Path, tmp_path: Path, s3: S3
) -> None:
    bucket = s3.new_bucket()
    s3.configure(project, "storage", f"s3://{bucket}/dvc")
    # the credentials live in .dvc/config.local, which git ignores: nothing to commit
    assert sh(["git", "status", "--porcelain"], project).stdout == ""
    assert sh(["git", "check-ignore", ".dvc/config.local"], project).returncode == 0

    pushed = dvc("push", cwd=project)
    assert "pushed" in pushed.stdout, pushed.stdout
    stored = s3.keys(bucket, "dvc/files/md5/")
    assert stored, "nothing reached the bucket"
    cloud = dvc("status", "--cloud", cwd=project)
    assert "Cache and remote 'storage' are in sync" in cloud.stdout, cloud.stdout

    _origin(project, tmp_path)
    sh(["git", "push", "-q", "origin", "main"], project)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(tmp_path / "origin.git"), str(clone)], tmp_path)
    assert not (clone / ".dvc/config.local").exists()
    s3.configure(clone, "storage", f"s3://{bucket}/dvc")
    dvc("pull", cwd=clone)

    expected = _outputs(project)
    assert any(k.startswith("models/") for k in expected) and any(
        k.startswith("data/prepared/") for k in expected
    )
    assert _outputs(clone) == expected
    status = dvc("status", cwd=clone)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert s3.keys(bucket, "dvc/files/md5/") == stored  # a pull writes nothing to the bucket


def _released(dev: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch target's release records at HEAD~1 (the stump) and HEAD (the champion)."""
    stump, champion = (
        json.loads(sh(["git", "show", f"{rev}:deploy/batch.json"], dev).stdout)
        for rev in ("HEAD~1", "HEAD")
    )
    assert champion == record(dev, "batch") and stump["release"] != champion["release"]
    return stump, champion


@pytest.mark.long(25)
def test_sync_pulls_released_bundles_from_s3(history_copy: Path, tmp_path: Path, s3: S3) -> None:
    """A serving clone's `mlops sync` pulls the declared bundle from the S3 remote, verifies it
    and fast-forwards; a bundle the remote lacks fails the sync, named, and leaves the checkout
    as it was; `mlops verify --pull` restores a damaged bundle from S3."""
    dev = history_copy  # HEAD releases the champion (r0002) over the stump (r0001, HEAD~1)
    bucket = s3.new_bucket()
    s3.configure(dev, "storage", f"s3://{bucket}/dvc")
    stump, champion = _released(dev)
    dvc("push", "--quiet", f"bundles/{stump['bundle']['id']}.dvc", cwd=dev)  # the stump only

    # the serving clone follows main, which declares the stump
    _origin(dev, tmp_path)
    sh(["git", "push", "-q", "origin", "HEAD~1:refs/heads/main"], dev)
    serving = tmp_path / "serving"
    sh(["git", "clone", "-q", str(tmp_path / "origin.git"), str(serving)], tmp_path)
    s3.configure(serving, "storage", f"s3://{bucket}/dvc")
    sync = ("sync", "--target", "batch")
    first = mlops(*sync, cwd=serving)
    assert f"batch: no service: declared {stump['release']}" in first.stdout
    assert f"pulled bundle {stump['bundle']['id']}" in first.stdout
    stump_bundle = f"bundles/{stump['bundle']['id']}/**/*"
    assert digests(serving, (stump_bundle,)) == digests(dev, (stump_bundle,))

    # main declares the champion, whose bundle was never pushed: refused, nothing moves
    sh(["git", "push", "-q", "origin", "main"], dev)
    head = sh(["git", "rev-parse", "HEAD"], serving).stdout
    before = digests(serving, ("deploy/*", "bundles/**/*"))
    failed = mlops(*sync, cwd=serving, check=False)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "`dvc pull" in failed.stderr and champion["bundle"]["id"] in failed.stderr
    assert sh(["git", "rev-parse", "HEAD"], serving).stdout == head
    assert digests(serving, ("deploy/*", "bundles/**/*")) == before
    assert sh(["git", "status", "--porcelain"], serving).stdout == ""

    # pushed: sync pulls it from S3, then fast-forwards
    dvc("push", "--quiet", cwd=dev)
    second = mlops(*sync, cwd=serving)
    assert f"batch: no service: declared {champion['release']}" in second.stdout
    assert f"pulled bundle {champion['bundle']['id']}" in second.stdout
    assert "fast-forwarded 1 commit(s)" in second.stdout
    bundle = f"bundles/{champion['bundle']['id']}/**/*"
    assert digests(serving, (bundle,)) == digests(dev, (bundle,))
    assert json.loads((serving / "deploy/batch.json").read_text()) == champion

    # mlops verify --pull (deploy.yml's first step) restores a damaged bundle from S3
    shutil.rmtree(serving / "bundles" / champion["bundle"]["id"])
    damaged = mlops("verify", "--target", "batch", cwd=serving, check=False)
    assert damaged.returncode == 1 and f"batch: FAILED {champion['release']}" in damaged.stdout
    verified = mlops("verify", "--target", "batch", "--pull", cwd=serving)
    assert f"batch: {champion['release']} verified" in verified.stdout
    assert digests(serving, (bundle,)) == digests(dev, (bundle,))


# ------------------------------------------------------------- the workflows' scripts
def _script(
    name: str, cwd: Path, *args: str, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A workflow script as a step runs it: `.venv/bin/dvc` from the project, and `make` a
    stand-in that records its arguments (the plugin is installed here already; that
    `make install-remote-s3` installs it is tests/test_ci_scripts.py's)."""
    fake = cwd.parent / "fake-bin"
    fake.mkdir(exist_ok=True)
    (fake / "make").write_text('#!/bin/sh\necho "make $*"\n')
    (fake / "make").chmod(0o755)
    environ = env()
    environ["PATH"] = f"{fake}:{environ['PATH']}"
    environ["GITHUB_OUTPUT"] = str(cwd.parent / "github_output")
    environ.update(extra)
    return subprocess.run(
        [str(ROOT / ".github/scripts" / name), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow  # a dozen DVC start-ups; the scripts' logic is tested in test_ci_scripts.py
def test_the_workflow_scripts_configure_s3_and_publish_bundles_to_it(
    tmp_path: Path, s3: S3
) -> None:
    """deploy.yml against s3://: dvc_remote.sh configures the DVC remote from the two secrets
    (the URL, and `endpointurl` and keys in DVC_REMOTE_CONFIG), `dvc push`, and
    publish_bundles.sh publishes every released bundle to the serving remote (another bucket),
    from which a serving machine pulls them."""
    repo = tmp_path / "repo"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    dvc("init", "-q", cwd=repo)
    (repo / ".venv").symlink_to(Path(sys.prefix))  # the scripts call .venv/bin/dvc
    (repo / ".git/info/exclude").write_text("/.venv\n")
    for name in ("aaaa", "bbbb"):
        (repo / "bundles" / name).mkdir(parents=True)
        (repo / "bundles" / name / "model.skops").write_text(f"release {name}")
    dvc("add", "-q", "bundles/aaaa", "bundles/bbbb", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "two releases"], repo)
    storage, serving = s3.new_bucket("storage"), s3.new_bucket("serving")

    config = "".join(f"{option} = {value}\n" for option, value in s3.options().items())
    secrets = {"DVC_REMOTE_URL": f"s3://{storage}/dvc", "DVC_REMOTE_CONFIG": config}
    proc = _script("dvc_remote.sh", repo, extra=secrets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "make --no-print-directory install-remote-s3" in proc.stdout
    assert "configured DVC remote 'storage' (s3)" in proc.stdout
    assert "remote=yes" in (tmp_path / "github_output").read_text()
    assert s3.options()["secret_access_key"] not in proc.stdout + proc.stderr
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""  # config.local only
    dvc("push", "-q", cwd=repo)
    assert len(s3.keys(storage, "dvc/files/md5/")) == 4  # two files, two directory listings

    s3.configure(repo, "serving", f"s3://{serving}/bundles", default=False)
    shutil.rmtree(repo / ".dvc/cache")  # a runner whose cache holds neither bundle
    shutil.rmtree(repo / "bundles/aaaa")
    published = _script("publish_bundles.sh", repo, "serving", extra={})
    assert published.returncode == 0, published.stdout + published.stderr
    assert "published 2 released bundle(s) to the 'serving' remote" in published.stdout
    assert s3.keys(serving, "bundles/files/md5/") == [
        k.replace("dvc/", "bundles/", 1) for k in s3.keys(storage, "dvc/files/md5/")
    ]
