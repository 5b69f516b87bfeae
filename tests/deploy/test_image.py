"""The service's container image (Dockerfile, issue 14): hadolint finds nothing, the image's
structure holds what hadolint cannot see, and its entrypoint (`mlops serve --bundle baked|fetch`)
runs here as a plain process against a released project laid out as the image lays it out: no
git repository, no DVC cache, the files the Dockerfile copies. Fetch mode pulls from a local-folder
DVC remote and refuses a bundle whose bytes are not the released ones. Building and running the
image itself needs a container runtime and the base image, and skips, saying so, without them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pipeline.deploy.entrypoint import check_expected
from pipeline.errors import ArtifactError
from pipeline.release_record import ReleaseRecord
from tests.conftest import BIN, ROOT, dvc, env, mlops
from tests.deploy.conftest import record
from tests.deploy.serving import free_port, http_get, http_post

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = ROOT / ".venv-deploy-tools/bin/hadolint"
DVC_SYSTEM_CONFIG = ROOT / "docker/dvc-system.config"
POINTERS = "/opt/mlops/pointers"


# ------------------------------------------------------------------------------ Dockerfile
def _hadolint(dockerfile: Path) -> list[dict[str, Any]]:
    if not HADOLINT.exists():
        pytest.skip(
            f"hadolint is not installed ({HADOLINT.relative_to(ROOT)}): "
            "`make install-deploy-tools` installs it"
        )
    proc = subprocess.run(
        [str(HADOLINT), "--config", str(ROOT / ".hadolint.yaml"), "--format", "json",
         str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings: list[dict[str, Any]] = json.loads(proc.stdout or "[]")
    assert (proc.returncode != 0) == bool(findings), proc.stderr
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    findings = _hadolint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_runs_with_the_projects_rules(tmp_path: Path) -> None:
    """The configuration is in force (a test of the linter run above, which could otherwise
    pass by checking nothing): a final stage running as root and a missing OCI label are
    found."""
    text = DOCKERFILE.read_text().replace('org.opencontainers.image.licenses="Apache-2.0" ', "")
    bad = tmp_path / "Dockerfile"
    bad.write_text(text.replace("USER 10001:10001", "USER root"))
    codes = {f["code"] for f in _hadolint(bad)}
    assert {"DL3002", "DL3049"} <= codes, codes


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word:
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by name; `FROM` first."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions(text):
        if word == "FROM":
            current = [(word, rest)]
            out[rest.split()[-1]] = current
        else:
            current.append((word, rest))
    return out


def test_the_image_is_pinned_unprivileged_and_without_build_tools() -> None:
    """What hadolint has no rule for: the base image pinned by digest, the served stages
    running as a fixed non-root UID with their writable paths declared as volumes, and no
    package installer or compiler at run time."""
    text = DOCKERFILE.read_text()
    args = dict(
        rest.split("=", 1) for word, rest in instructions(text) if word == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    by_name = stages(text)
    assert set(by_name) == {"build", "runtime", "bundle-fetch", "bundle-baked", "final"}
    for name in ("build", "runtime"):
        assert by_name[name][0][1] == f"${{PYTHON_IMAGE}} AS {name}"
    assert by_name["final"][0][1] == "bundle-${BUNDLE} AS final" and args["BUNDLE"] == "fetch"
    served = {
        mode: by_name["runtime"][1:] + by_name[f"bundle-{mode}"][1:] for mode in ("fetch", "baked")
    }
    for mode, steps in served.items():
        users = [rest for word, rest in steps if word == "USER"]
        assert users and re.fullmatch(r"[1-9][0-9]{3,}:[1-9][0-9]{3,}", users[-1]), (mode, users)
        runs = " ".join(rest for word, rest in steps if word == "RUN")
        assert not re.search(r"pip install|apt-get|apk |gcc|\bmake\b", runs), (mode, runs)
        copied = [rest for word, rest in steps if word == "COPY" and "--from=" in rest]
        assert copied == ["--from=build /opt/venv /opt/venv"], copied
        volumes = json.loads(next(rest for word, rest in steps if word == "VOLUME"))
        assert {"/app/logs", "/tmp"} <= set(volumes), volumes
        entry = json.loads(next(rest for word, rest in steps if word == "ENTRYPOINT"))
        assert entry[:4] == ["mlops", "serve", "--bundle", mode], entry
    fetch_volumes = json.loads(
        next(rest for word, rest in by_name["bundle-fetch"] if word == "VOLUME")
    )
    assert {"/app/bundles", "/app/.dvc/cache", "/app/.dvc/tmp"} <= set(fetch_volumes)
    assert any(w == "EXPOSE" and r == "8000" for w, r in served["fetch"])
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") - 1].startswith("#") and "*" in ignored  # an allow-list
    assert not any(line.startswith("!.dvc/config.local") for line in ignored)


# ------------------------------------------------------------ the entrypoint, as a process
def image_layout(project: Path, dest: Path, *, baked: bool) -> tuple[Path, Path]:
    """(root, pointers): what the Dockerfile copies from a release checkout into /app (conf/,
    params.yaml, deploy/*.json, .dvc/config; bundles/ when baked) and /opt/mlops/pointers (the
    bundles' DVC pointers), laid out under `dest`. No git repository, no DVC cache."""
    root, pointers = dest / "app", dest / "pointers"
    shutil.copytree(project / "conf", root / "conf")
    shutil.copy(project / "params.yaml", root / "params.yaml")
    (root / "deploy").mkdir()
    for path in (project / "deploy").glob("*.json"):
        shutil.copy(path, root / "deploy" / path.name)
    (root / ".dvc").mkdir()
    shutil.copy(project / ".dvc/config", root / ".dvc/config")
    pointers.mkdir()
    for path in (project / "bundles").glob("*.dvc"):
        shutil.copy(path, pointers / path.name)
    if baked:
        shutil.copytree(project / "bundles", root / "bundles")
    else:
        (root / "bundles").mkdir()  # the (empty) bundle cache volume
    return root, pointers


def image_env(root: Path, dest: Path, target: str, port: int) -> dict[str, str]:
    """What the Dockerfile adds to the environment, with this layout's paths for the image's
    (DVC's system configuration: the image's file)."""
    system = dest / "dvc-system"
    system.mkdir(exist_ok=True)
    shutil.copy(DVC_SYSTEM_CONFIG, system / "config")
    return {
        "DVC_SYSTEM_CONFIG_DIR": str(system),
        "DVC_GLOBAL_CONFIG_DIR": str(dest / "dvc-remote"),  # nothing mounted
        "DVC_SITE_CACHE_DIR": str(dest / "tmp/dvc"),
        "MLOPS_TARGET": target,
        "MLOPS_HOST": "127.0.0.1",
        "MLOPS_PORT": str(port),
    }


def one_row(project: Path) -> dict[str, Any]:
    """A held-out record, as a client sends it (the features only)."""
    test = pd.read_parquet(project / "data/prepared/test.parquet")
    row: dict[str, Any] = json.loads(
        test.drop(columns=["target"]).iloc[:1].to_json(orient="records")
    )[0]
    return row


@contextmanager
def serving(
    args: list[str], cwd: Path, environ: Mapping[str, str], log: Path, prefix: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run the entrypoint command until /health answers ok; yields the base URL."""
    url = f"http://127.0.0.1:{environ['MLOPS_PORT']}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*prefix, str(BIN / "mlops"), *args], cwd=cwd, env={**env(), **environ}, stdout=out,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if http_get(f"{url}/health", timeout=1).json()["status"] == "ok":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def check_serves(url: str, project: Path, release: str) -> None:
    health = http_get(f"{url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["error"] is None, health
    version = http_get(f"{url}/version", timeout=5).json()
    assert version["release"] == release, version
    response = http_post(f"{url}/predict", json=one_row(project), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["release"] == release


@pytest.mark.long(15)
def test_baked_the_entrypoint_checks_the_bundle_and_serves_it(
    history: Path, tmp_path: Path
) -> None:
    """`mlops serve --bundle baked` with the image's environment (target, host and port from
    MLOPS_*), on 127.0.0.1 and an ephemeral port: /health, /version and /predict."""
    root, _ = image_layout(history, tmp_path, baked=True)
    declared = record(history, "local")
    released = declared["release"]
    environ = image_env(root, tmp_path, "local", free_port())
    # what a rendered Kubernetes manifest adds: the release and bundle it expects
    environ |= {"MLOPS_RELEASE": released, "MLOPS_BUNDLE_SHA256": declared["bundle"]["sha256"]}
    log = tmp_path / "serve.log"
    with serving(["serve", "--bundle", "baked"], root, environ, log) as url:
        check_serves(url, history, released)
    assert f"local: verified {released}" in log.read_text()
    assert not (root / ".dvc/tmp").exists()  # baked: DVC never ran
    assert sorted(p.name for p in root.iterdir()) == [".dvc", "bundles", "conf", "deploy",
                                                      "logs", "params.yaml"]  # fmt: skip


def test_baked_refuses_a_missing_or_altered_bundle(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = image_layout(history, tmp_path, baked=True)
    released = record(history, "local")
    bundle = root / released["bundle"]["path"]
    environ = image_env(root, tmp_path, "local", free_port())
    other = "r0001-" + "0" * 16
    refused = _refused(
        ["serve", "--bundle", "baked"], root, environ | {"MLOPS_RELEASE": other}, monkeypatch
    )
    assert f"local: the deployment expects {other}; this image declares " in refused
    assert f"{released['release']} (bundle sha256 {released['bundle']['sha256']})" in refused
    monkeypatch.delenv("MLOPS_RELEASE")
    (bundle / "signature.json").write_text("{}")
    refused = _refused(["serve", "--bundle", "baked"], root, environ, monkeypatch)
    assert f"local: refusing to serve {released['release']}" in refused
    assert "signature.json" in refused
    assert "hint: rebuild the image from a checkout where `mlops verify` passes" in refused
    shutil.rmtree(bundle)
    assert "refusing to serve" in _refused(
        ["serve", "--bundle", "baked"], root, environ, monkeypatch
    )


def _refused(
    args: list[str], cwd: Path, environ: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the entrypoint command (in this process: no interpreter start-up) expecting exit 2
    before it listens; its stderr."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    proc = mlops(*args, cwd=cwd, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Uvicorn running" not in proc.stderr
    return proc.stderr


def _declared(release: str, sha: str) -> ReleaseRecord:
    bundle = {"id": sha[:16], "sha256": sha, "path": f"bundles/{sha[:16]}"}
    return ReleaseRecord("k8s", release, {"target": "k8s", "release": release, "bundle": bundle})


@pytest.mark.parametrize(
    ("release", "sha256", "refused"),
    [
        (None, None, False),
        ("r0002-" + "b" * 16, None, False),  # the candidate of a running rollout
        ("r0002-" + "b" * 16, "b" * 64, False),
        (None, "a" * 64, False),
        ("r0003-" + "c" * 16, None, True),
        ("r0001-" + "a" * 16, "b" * 64, True),  # both declared, but not together
    ],
)
def test_the_release_a_manifest_expects_must_be_one_the_image_declares(
    release: str | None, sha256: str | None, refused: bool
) -> None:
    records = [_declared("r0001-" + "a" * 16, "a" * 64), _declared("r0002-" + "b" * 16, "b" * 64)]
    if not refused:
        check_expected(records, "k8s", release, sha256)
        return
    with pytest.raises(ArtifactError, match="k8s: the deployment expects r000") as caught:
        check_expected(records, "k8s", release, sha256)
    assert "this image declares r0001-aaaaaaaaaaaaaaaa (bundle sha256 aaaa" in str(caught.value)
    assert "run the image workflow for the release" in (caught.value.hint or "")


@pytest.fixture
def pushed(history_copy: Path, tmp_path: Path) -> Path:
    """The released project with a local-folder DVC remote (the project's default, in
    .dvc/config as a team would commit it) holding the released bundles."""
    storage = tmp_path / "dvc-storage"
    dvc("remote", "add", "--default", "storage", str(storage), cwd=history_copy)
    bundle = record(history_copy, "local")["bundle"]["id"]
    dvc("push", "--quiet", f"bundles/{bundle}.dvc", cwd=history_copy)
    return history_copy


@pytest.mark.long(20)
def test_fetch_pulls_verifies_and_serves_from_an_empty_bundle_cache(
    pushed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, pointers = image_layout(pushed, tmp_path / "image", baked=False)
    released = record(pushed, "local")
    environ = image_env(root, tmp_path / "image", "local", free_port())
    log = tmp_path / "serve.log"
    args = ["serve", "--bundle", "fetch", "--pointers", str(pointers)]
    with serving(args, root, environ, log) as url:
        check_serves(url, pushed, released["release"])
    printed = log.read_text()
    bundle = released["bundle"]["id"]
    assert f"local: restored pointer bundles/{bundle}.dvc" in printed
    assert f"local: pulled bundle {bundle}" in printed
    assert f"local: verified {released['release']}" in printed
    assert (root / ".dvc/cache").is_dir() and (root / ".dvc/tmp").is_dir()  # DVC's volumes
    # a restart finds the bundle in the cache, verifies it and pulls nothing
    from pipeline.deploy.entrypoint import prepare

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert prepare(root, "local", "fetch", pointers=pointers) == [
        f"verified {released['release']} (bundle {bundle})"
    ]


def test_fetch_refuses_bytes_that_are_not_the_released_bundle(
    pushed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DVC remote serves a changed model file under the released bundle's address (DVC
    does not check what it downloads): the record's digest catches it and nothing is served."""
    released = record(pushed, "local")
    model = pushed / released["bundle"]["path"] / "model.skops"
    md5 = hashlib.md5(model.read_bytes()).hexdigest()  # DVC's address of the file
    stored = tmp_path / "dvc-storage/files/md5" / md5[:2] / md5[2:]
    assert stored.is_file()
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes() + b"tampered")
    root, pointers = image_layout(pushed, tmp_path / "image", baked=False)
    environ = image_env(root, tmp_path / "image", "local", free_port())
    args = ["serve", "--bundle", "fetch", "--pointers", str(pointers)]
    refused = _refused(args, root, environ, monkeypatch)
    assert f"local: refusing to serve {released['release']}" in refused
    assert "model.skops" in refused
    assert "hint: the bytes pulled are not the released bundle" in refused


def test_fetch_without_a_pointer_or_a_remote_is_a_clear_error(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, pointers = image_layout(history, tmp_path, baked=False)
    released = record(history, "local")["release"]
    environ = image_env(root, tmp_path, "local", free_port())
    no_pointer = _refused(["serve", "--bundle", "fetch"], root, environ, monkeypatch)
    assert f"{released}: no DVC pointer for bundle" in no_pointer
    args = ["serve", "--bundle", "fetch", "--pointers", str(pointers)]
    no_remote = _refused(args, root, environ, monkeypatch)
    assert f"local: cannot fetch {released}" in no_remote
    assert "hint: configure the DVC remote" in no_remote


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLOPS_PORT", "eighty", "environment variable MLOPS_PORT: expected a port number"),
        ("MLOPS_BUNDLE_MODE", "both", "variable MLOPS_BUNDLE_MODE: expected one of baked, fetch"),
        ("MLOPS_TARGET", "nope", "no deployment target 'nope'"),
    ],
)
def test_bad_image_environment_is_refused_with_the_variable_named(
    template: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    refused = mlops("serve", cwd=template, check=False)
    assert refused.returncode == 2 and expected in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


# -------------------------------------------------------- read-only, as in the container
def _can_mount() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs",
         "/mnt"], capture_output=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0


@pytest.mark.slow
def test_fetch_runs_with_a_read_only_project_and_only_the_declared_volumes_writable(
    pushed: Path, tmp_path: Path
) -> None:
    """The container's --read-only, approximated with a private mount namespace: the image's
    root and pointers are read-only bind mounts, and only the Dockerfile's volumes (bundle
    cache, DVC's lock folder, logs, /tmp) are writable tmpfs mounts."""
    if not _can_mount():
        pytest.skip("needs root and `unshare --mount` to mount the project read-only")
    dest = tmp_path / "image"
    root, pointers = image_layout(pushed, dest, baked=False)
    for volume in (".dvc/cache", ".dvc/tmp", "logs"):
        (root / volume).mkdir()
    (dest / "tmp").mkdir()
    environ = image_env(root, dest, "local", free_port())
    volumes = [root / v for v in ("bundles", ".dvc/cache", ".dvc/tmp", "logs")] + [dest / "tmp"]
    script = "; ".join(
        [
            "set -e",
            f"mount --bind {root} {root}",
            f"mount -o remount,bind,ro {root}",
            f"mount --bind {pointers} {pointers}",
            f"mount -o remount,bind,ro {pointers}",
            *(f"mount -t tmpfs tmpfs {v}" for v in volumes),
            'exec "$@"',
        ]
    )
    prefix = ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh")
    released = record(pushed, "local")["release"]
    args = ["serve", "--bundle", "fetch", "--pointers", str(pointers)]
    with serving(args, root, environ, tmp_path / "serve.log", prefix) as url:
        check_serves(url, pushed, released)
    assert not list((root / ".dvc/cache").iterdir())  # written to the tmpfs only


# ------------------------------------------------------------------ the image, for real
def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_the_image_builds_and_serves_read_only(history: Path, tmp_path: Path) -> None:
    """docker build (bundle=baked) and docker run --read-only with the declared tmpfs mounts:
    /health answers. Skips, naming what is missing, without a reachable container runtime or
    the pinned base image (the build never pulls it: no network in the tests)."""
    if shutil.which("docker") is None:
        pytest.skip("no container runtime: the docker CLI is not installed")
    info = _docker("info", "--format", "{{.ServerVersion}}")
    if info.returncode != 0:
        pytest.skip(f"no container runtime reachable (docker info: {info.stderr.strip()[:200]})")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.M)
    assert base is not None
    if _docker("image", "inspect", base.group(1)).returncode != 0:
        pytest.skip(f"the base image {base.group(1)} is not present (docker pull it first)")
    context = tmp_path / "context"
    for item in ("Dockerfile", ".dockerignore", "requirements", "pyproject.toml", "README.md",
                 "pipeline", "docker"):  # fmt: skip
        source = ROOT / item
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, context / item)
    root, _ = image_layout(history, tmp_path / "layout", baked=True)
    for item in root.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, context / item.name)
    tag = f"gitops-mlops-test:{os.getpid()}"
    built = _docker("build", "--build-arg", "BUNDLE=baked", "-t", tag, str(context), timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        port = free_port()
        run = _docker("run", "-d", "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/app/logs",
                      "-p", f"127.0.0.1:{port}:8000", tag)  # fmt: skip
        assert run.returncode == 0, run.stderr
        container = run.stdout.strip()
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if http_get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, _docker("logs", container).stderr
                time.sleep(0.5)
            check_serves(f"http://127.0.0.1:{port}", history, record(history, "local")["release"])
        finally:
            _docker("rm", "-f", container)
    finally:
        _docker("image", "rm", "-f", tag)
