"""Deployment environments (issue 14): kubernetes and systemd targets, their image record, the
rendered desired state (manifests, units), `mlops render / image record / install-units`, the
status lines and the pull-request diff.

Offline and cheap: one project copy per module (sources only, no `dvc repro`) with the example
targets added to its conf/config.yaml and hand-written release records (rendering reads records,
never bundles). The external validators run when installed (`make install-deploy-tools` builds
.venv-deploy-tools with kubernetes-validate and checkov; systemd-analyze comes with systemd) and
each test says why it skips otherwise.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import config
from pipeline.deploy import environments
from pipeline.deploy.environments import kubernetes
from pipeline.deploy.image import parse_image
from pipeline.deploy.status import target_lines
from pipeline.errors import ArtifactError
from pipeline.io import dumps_json, write_json
from pipeline.release_record import released_record, rollout_started
from pipeline.validation import validate_params
from tests.conftest import BIN, ROOT, copy_project, mlops

TOOLS = ROOT / ".venv-deploy-tools" / "bin"
KUBERNETES_VALIDATE = TOOLS / "kubernetes-validate"
CHECKOV = TOOLS / "checkov"
NO_TOOLS = "not installed: `make install-deploy-tools` builds .venv-deploy-tools"
TARGETS = [
    "  - deploy@deploy.targets.k8s: kubernetes",
    "  - deploy@deploy.targets.onprem: onprem",
]
EXAMPLES = ["+deploy@deploy.targets.k8s=kubernetes", "+deploy@deploy.targets.onprem=onprem"]
SHA1, SHA2 = "a1" * 32, "b2" * 32
R1, R2 = f"r0001-{SHA1[:16]}", f"r0002-{SHA2[:16]}"
DIGEST1, DIGEST2 = "sha256:" + "c3" * 32, "sha256:" + "d4" * 32
K8S_DIR, UNITS_DIR = Path("deploy/k8s/k8s"), Path("deploy/systemd/onprem")


def record(target: str, release: str = R1, sha: str = SHA1, parent: str | None = None) -> dict:
    return released_record(
        target,
        release,
        parent=parent,
        pinned=None,
        bundle_sha256=sha,
        model={"name": "m"},
        metrics={},
        gates={},
    )


def add_targets(project: Path, *extra: str) -> None:
    """Declare the example targets in the project's conf/config.yaml and compose."""
    conf = project / "conf/config.yaml"
    text = conf.read_text(encoding="utf-8")
    anchor = "  - deploy@deploy.targets.batch: batch"
    lines = "\n".join(TARGETS)
    conf.write_text(text.replace(anchor, f"{anchor.split('  #')[0]}\n{lines}", 1))
    for target in ("k8s", "onprem"):
        write_json(project / f"deploy/{target}.json", record(target))
    mlops("compose", *extra, cwd=project)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("environments") / "project")
    add_targets(project)
    return project


@pytest.fixture
def project(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "project", symlinks=True))


def load(project: Path) -> Any:
    return config.load_config(project, hyperparameters=False)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


# ----------------------------------------------------------------------------- config
@pytest.fixture(scope="module")
def composed() -> dict[str, Any]:
    return config.compose(ROOT, EXAMPLES).data


def _issues(data: dict[str, Any], **changes: Any) -> list[tuple[str, str]]:
    data = copy.deepcopy(data)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node[name]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    found = validate_params(data, lambda key: "params.yaml", root=ROOT, hyperparameters=False)
    return [(i.key, i.message) for i in found]


DELETE = object()
K = "deploy__targets__k8s"
S = "deploy__targets__onprem"


def test_the_examples_compose_valid_and_serve_what_local_serves(composed: dict) -> None:
    assert _issues(composed) == []
    targets = composed["deploy"]["targets"]
    k8s, onprem, local = targets["k8s"], targets["onprem"], targets["local"]
    assert (k8s["kind"], onprem["kind"]) == ("kubernetes", "systemd")
    for target in (k8s, onprem):  # the same service: gates, strategy, serve settings
        assert target["gates"] == local["gates"] and target["strategy"] == local["strategy"]
    assert {**k8s["serve"], "host": local["serve"]["host"]} == local["serve"]
    assert k8s["serve"]["host"] == "0.0.0.0"  # inside a pod
    # not in the default composition: params.yaml has neither
    default = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert set(default["deploy"]["targets"]) == {"local", "batch"}


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({f"{K}__image__repository": DELETE}, "deploy.targets.k8s.image.repository", "required"),
        ({f"{K}__image": DELETE}, "deploy.targets.k8s.image", "required key is missing"),
        (
            {f"{K}__kubernetes__resources__requests__cpu": "2x"},
            "deploy.targets.k8s.kubernetes.resources.requests.cpu",
            "expected a string matching",
        ),
        (
            {f"{K}__kubernetes__resources__limits__memory": "1GB"},
            "deploy.targets.k8s.kubernetes.resources.limits.memory",
            "expected a string matching",
        ),
        (
            {f"{K}__kubernetes__resources__limits__cpu": 1},
            "deploy.targets.k8s.kubernetes.resources.limits.cpu",
            "expected a value of type string",
        ),
        ({f"{K}__kind": "helm"}, "deploy.targets.k8s.kind", "expected one of: 'service'"),
        (
            {f"{K}__image__repository": "ghcr.io/Example/App:latest"},
            "deploy.targets.k8s.image.repository",
            "expected a string matching",
        ),
        ({f"{K}__image__bundle": "pull"}, "deploy.targets.k8s.image.bundle", "expected one of"),
        (
            {f"{K}__kubernetes__run_as_user": 0},
            "deploy.targets.k8s.kubernetes.run_as_user",
            "expected a number >= 10000",
        ),
        (
            {f"{S}__image": {"repository": "ghcr.io/a/b", "bundle": "fetch"}},
            "deploy.targets.onprem.image",
            "this value is not allowed here",
        ),
        (
            {"deploy__targets__local__kubernetes": {}},
            "deploy.targets.local.kubernetes",
            "this value is not allowed here",
        ),
        ({f"{S}__systemd": DELETE}, "deploy.targets.onprem.systemd", "required key is missing"),
        (
            {f"{S}__systemd__checkout": "srv/relative"},
            "deploy.targets.onprem.systemd.checkout",
            "expected a string matching",
        ),
        (
            {f"{K}__kubernetes__path": "../outside"},
            "deploy.targets.k8s.kubernetes.path",
            "expected a string matching",
        ),
    ],
)
def test_a_bad_environment_config_is_refused_with_its_key(
    composed: dict, changes: dict[str, Any], key: str, message: str
) -> None:
    issues = _issues(composed, **changes)
    assert any(k == key and message in m for k, m in issues), issues


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        (
            {f"{K}__kubernetes__resources__requests__memory": "2Gi"},
            "deploy.targets.k8s.kubernetes.resources.requests.memory",
            "more than its limit (1Gi)",
        ),
        (
            {f"{K}__kubernetes__resources__requests__cpu": "1500m"},
            "deploy.targets.k8s.kubernetes.resources.requests.cpu",
            "more than its limit (1)",
        ),
        (
            {f"{K}__kubernetes__autoscaling__min_replicas": 7},
            "deploy.targets.k8s.kubernetes.autoscaling.min_replicas",
            "more than max_replicas (6)",
        ),
        (
            {f"{S}__systemd__path": "deploy/k8s"},
            "deploy.targets.onprem.systemd.path",
            "deploy/k8s overlaps deploy/k8s/k8s, where target k8s renders",
        ),
    ],
)
def test_what_the_schema_cannot_say_is_refused_too(
    composed: dict, changes: dict[str, Any], key: str, message: str
) -> None:
    issues = _issues(composed, **changes)
    assert any(k == key and message in m for k, m in issues), issues


def test_quantities_are_read_as_kubernetes_reads_them() -> None:
    from pipeline.validation import quantity

    assert quantity("500m") == 0.5 and quantity("1.5") == 1.5 and quantity("2") == 2
    assert quantity("512Mi") == 512 * 2**20 and quantity("1G") == 1e9 and quantity("3k") == 3e3


def test_compose_refuses_a_bad_quantity_naming_key_and_file(project: Path) -> None:
    before = (project / "params.yaml").read_bytes()
    conf = project / "conf/deploy/kubernetes.yaml"
    conf.write_text(conf.read_text().replace("cpu: 500m", "cpu: 2x"))
    out = mlops("compose", cwd=project, check=False)
    assert out.returncode == 2
    assert "conf/deploy/kubernetes.yaml" in out.stderr
    assert "deploy.targets.k8s.kubernetes.resources.requests.cpu" in out.stderr
    assert (project / "params.yaml").read_bytes() == before


# -------------------------------------------------------------------------- image record
@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",
        "latest",
        "sha256:" + "C3" * 32,
        "sha512:" + "c3" * 64,
        "c3" * 32,
        "sha256:" + "c3" * 32 + "\n",
        "ghcr.io/example/gitops-mlops@sha256:" + "c3" * 32,
    ],
)
def test_image_record_refuses_a_bad_digest_and_writes_nothing(project: Path, digest: str) -> None:
    out = mlops("image", "record", "--target", "k8s", "--digest", digest, cwd=project, check=False)
    assert out.returncode == 2
    assert "is not an image digest: expected sha256:<64 lowercase hex digits>" in out.stderr
    assert not (project / "deploy/images").exists() and not (project / K8S_DIR).exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("onprem", "a systemd target runs `mlops serve` from a deployment checkout"),
        ("local", "a service target has no image"),
        ("batch", "a batch target has no image"),
        ("nope", "no deployment target 'nope'"),
    ],
)
def test_image_record_is_for_kubernetes_targets(project: Path, target: str, message: str) -> None:
    out = mlops(
        "image", "record", "--target", target, "--digest", DIGEST1, cwd=project, check=False
    )
    assert out.returncode == 2 and message in out.stderr
    assert not (project / "deploy/images").exists()


def test_image_record_needs_a_release(project: Path) -> None:
    write_json(project / "deploy/k8s.json", {"target": "k8s", "release": None})
    out = mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project, check=False)
    assert out.returncode == 2 and "nothing has been released to k8s" in out.stderr


def test_the_image_record_parser_is_strict() -> None:
    good = {
        "target": "k8s",
        "release": R1,
        "bundle": {"id": SHA1[:16], "sha256": SHA1, "mode": "fetch"},
        "image": f"ghcr.io/example/gitops-mlops@{DIGEST1}",
    }
    assert parse_image(json.dumps(good), "x.json", "k8s").digest == DIGEST1
    bad = [
        ({**good, "note": 1}, "Additional properties are not allowed"),
        ({**good, "image": "ghcr.io/example/gitops-mlops:latest"}, "image"),
        ({**good, "bundle": {**good["bundle"], "id": SHA2[:16]}}, "do not match release"),
        ({**good, "target": "other"}, "expected 'k8s'"),
        ({**good, "release": "r1-abc"}, "release"),
    ]
    for data, message in bad:
        with pytest.raises(ArtifactError, match=message):
            parse_image(json.dumps(data), "x.json", "k8s")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        parse_image("{", "x.json", "k8s")


# ------------------------------------------------------------------------------ rendering
def test_without_an_image_nothing_is_rendered_and_the_note_says_why(project: Path) -> None:
    out = mlops("render", cwd=project)
    assert "k8s: no image recorded yet (deploy/images/k8s.json): nothing rendered" in out.stdout
    assert "`mlops image record --target k8s --digest sha256:...`" in out.stdout
    assert not (project / K8S_DIR).exists()
    assert set(files(project / UNITS_DIR)) == {
        "mlops-onprem-serve.service",
        "mlops-onprem-sync.service",
    }
    assert mlops("render", "--check", cwd=project).returncode == 0


def test_image_record_writes_the_record_and_renders(project: Path) -> None:
    out = mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    assert f"{R1} is served by ghcr.io/example/gitops-mlops@{DIGEST1}" in out.stdout
    image = json.loads((project / "deploy/images/k8s.json").read_text())
    assert image == {
        "target": "k8s",
        "release": R1,
        "bundle": {"id": SHA1[:16], "sha256": SHA1, "mode": "fetch"},
        "image": f"ghcr.io/example/gitops-mlops@{DIGEST1}",
    }
    assert set(files(project / K8S_DIR)) == {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "networkpolicy.yaml",
        "kustomization.yaml",
    }
    deployment = yaml.safe_load((project / K8S_DIR / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == f"ghcr.io/example/gitops-mlops@{DIGEST1}"
    for annotated in (deployment["metadata"], pod["metadata"]):
        assert annotated["annotations"]["gitops-mlops/release"] == R1
        assert annotated["annotations"]["gitops-mlops/image-digest"] == DIGEST1
    assert "replicas" not in deployment["spec"]  # the autoscaler owns them
    assert mlops("render", "--check", "--target", "k8s", cwd=project).returncode == 0


def test_render_check_finds_a_hand_edit_and_render_restores_it(project: Path) -> None:
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    rendered = files(project / K8S_DIR)
    (project / K8S_DIR / "service.yaml").write_text("edited\n")
    (project / K8S_DIR / "extra.yaml").write_text("kind: ConfigMap\n")
    (project / K8S_DIR / "hpa.yaml").unlink()
    edited = files(project / K8S_DIR)
    out = mlops("render", "--check", cwd=project, check=False)
    assert out.returncode == 1
    for line in ("extra.yaml: removed", "hpa.yaml: added", "service.yaml: changed"):
        assert f"deploy/k8s/k8s/{line}" in out.stdout
    assert files(project / K8S_DIR) == edited  # --check writes nothing
    mlops("render", "--target", "k8s", cwd=project)
    assert files(project / K8S_DIR) == rendered


def test_rendering_is_deterministic_and_a_new_image_changes_only_what_it_serves(
    project: Path,
) -> None:
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    first = files(project / K8S_DIR)
    params = load(project)
    again = environments.render(project, params, "k8s")
    assert {n: t.encode() for n, t in again.files.items()} == first
    # the next release, and its image
    write_json(project / "deploy/k8s.json", record("k8s", R2, SHA2, parent=R1))
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST2, cwd=project)
    second = files(project / K8S_DIR)
    changed = {n for n in first if first[n] != second[n]}
    assert changed == {"deployment.yaml"}  # the Service, HPA, PDB, policy do not move
    old = first["deployment.yaml"].decode().splitlines()
    new = second["deployment.yaml"].decode().splitlines()
    assert len(old) == len(new)
    differing = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    for before, after in differing:
        assert after == before.replace(R1, R2).replace(SHA1, SHA2).replace(DIGEST1, DIGEST2)
    # release, bundle and image digest: 3 annotations x 2, 2 environment variables, the image
    assert len(differing) == 9


def test_a_release_waits_for_its_image(project: Path) -> None:
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    write_json(project / "deploy/k8s.json", record("k8s", R2, SHA2, parent=R1))
    out = mlops("render", cwd=project)
    assert f"the workload serves {R1}, the release its image was built for; {R2} is" in out.stdout
    lines = target_lines(project, "k8s", load(project).data["deploy"]["targets"]["k8s"], None)
    assert any(f"rendered: {R1} (deployment) — WAITING: {R2} is declared" in x for x in lines)


def test_the_pods_are_locked_down(project: Path) -> None:
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    pod = yaml.safe_load((project / K8S_DIR / "deployment.yaml").read_text())["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsUser"] >= 10000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp", "/app/logs/local", "/app/bundles", "/app/.dvc/cache", "/app/.dvc/tmp"}
    policy = yaml.safe_load((project / K8S_DIR / "networkpolicy.yaml").read_text())["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]


def _canary_project(project: Path) -> None:
    """The k8s target with a canary strategy and a KServe InferenceService, mid-rollout."""
    conf = project / "conf/deploy/kubernetes.yaml"
    text = conf.read_text().replace("kserve: false", "kserve: true")
    text += (
        "\nstrategy:\n  kind: canary\n  steps:\n"
        "    - {weight: 0.1, hold: {seconds: 90.5}}\n"
        "    - {weight: 0.5, hold: {requests: 1000}}\n"
        "    - {weight: 1.0, hold: {requests: 10, seconds: 60}}\n"
    )
    conf.write_text(text)
    mlops("compose", cwd=project)
    steps = [s.to_dict() for s in load(project).deploy.target("k8s").strategy.steps]
    running = rollout_started(
        record("k8s"), record("k8s", R2, SHA2, R1), strategy="canary", key=None, steps=steps
    )
    write_json(project / "deploy/k8s.json", running)


def test_a_canary_target_renders_an_argo_rollout_of_the_candidate(project: Path) -> None:
    _canary_project(project)
    out = mlops("image", "record", "--target", "k8s", "--digest", DIGEST2, cwd=project)
    assert f"{R2} is served by" in out.stdout  # the candidate: Argo shifts traffic to it
    names = set(files(project / K8S_DIR))
    assert "rollout.yaml" in names and "deployment.yaml" not in names
    rollout = yaml.safe_load((project / K8S_DIR / "rollout.yaml").read_text())
    assert (rollout["apiVersion"], rollout["kind"]) == ("argoproj.io/v1alpha1", "Rollout")
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 10},
        {"pause": {"duration": "91s"}},
        {"setWeight": 50},
        {"pause": {}},
        {"setWeight": 100},
        {"pause": {}},
    ]
    assert rollout["spec"]["template"]["metadata"]["annotations"]["gitops-mlops/release"] == R2
    hpa = yaml.safe_load((project / K8S_DIR / "hpa.yaml").read_text())
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Rollout"
    isvc = yaml.safe_load((project / K8S_DIR / "inferenceservice.yaml").read_text())
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    (predictor,) = isvc["spec"]["predictor"]["containers"]
    assert predictor["name"] == "kserve-container" and predictor["image"].endswith(DIGEST2)
    kustomization = yaml.safe_load((project / K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(names - {"kustomization.yaml"})


def _as_deployment(obj: dict[str, Any], pod_spec: dict[str, Any] | None = None) -> dict:
    """A custom resource's pod template as a Deployment: what the Kubernetes schemas and checkov
    can judge (neither knows Argo Rollouts' or KServe's CRDs)."""
    template = obj["spec"].get("template") or {
        "metadata": {"labels": obj["metadata"]["labels"]},  # KServe gives its pods these
        "spec": pod_spec,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**obj["metadata"], "name": obj["metadata"]["name"] + "-as-deployment"},
        "spec": {
            "selector": {"matchLabels": template["metadata"]["labels"]},
            "template": template,
        },
    }


def _validation_dir(project: Path, out: Path) -> Path:
    """Every rendered object a validator can judge: the direct target's files, and the canary
    target's Rollout and InferenceService pod templates as Deployments."""
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    out.mkdir()
    for path in (project / K8S_DIR).iterdir():
        if path.name != "kustomization.yaml":
            shutil.copy(path, out / path.name)
    _canary_project(project)
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST2, cwd=project)
    rollout = yaml.safe_load((project / K8S_DIR / "rollout.yaml").read_text())
    isvc = yaml.safe_load((project / K8S_DIR / "inferenceservice.yaml").read_text())
    predictor = {k: v for k, v in isvc["spec"]["predictor"].items() if "Replicas" not in k}
    (out / "rollout-template.yaml").write_text(yaml.safe_dump(_as_deployment(rollout)))
    (out / "kserve-predictor.yaml").write_text(yaml.safe_dump(_as_deployment(isvc, predictor)))
    return out


@pytest.mark.skipif(not KUBERNETES_VALIDATE.exists(), reason=f"kubernetes-validate {NO_TOOLS}")
def test_manifests_validate_against_the_kubernetes_schemas(project: Path, tmp_path: Path) -> None:
    out = _validation_dir(project, tmp_path / "validate")
    names = sorted(p.name for p in out.iterdir())
    proc = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", *names],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in names:  # it only warns on a kind it has no schema for: every file must pass
        assert f"{name} passed for resource" in proc.stdout + proc.stderr, proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not CHECKOV.exists(), reason=f"checkov {NO_TOOLS}")
def test_checkov_finds_nothing(project: Path, tmp_path: Path) -> None:
    """checkov 3 reports severities only from the Prisma Cloud API (a key we do not have; and
    no network): the full Kubernetes check set runs offline and no check may fail (none is
    skipped)."""
    out = _validation_dir(project, tmp_path / "checkov")
    offline = ("--framework", "kubernetes", "--skip-download", "--output", "json")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(out), *offline],
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(proc.stdout)
    failed = [(c["check_id"], c["resource"]) for c in result["results"]["failed_checks"]]
    assert failed == [] and result["summary"]["skipped"] == 0
    assert result["summary"]["passed"] >= 150  # the pod checks ran, on three pod templates


# -------------------------------------------------------------------------------- systemd
def _units(project: Path) -> dict[str, str]:
    """The units of the onprem target, pointed at this machine's mlops (verify checks that
    ExecStart exists) and this project as the checkout."""
    conf = project / "conf/deploy/onprem.yaml"
    text = conf.read_text().replace("/srv/gitops-mlops/.venv/bin/mlops", str(BIN / "mlops"))
    conf.write_text(text.replace("checkout: /srv/gitops-mlops", f"checkout: {project}"))
    mlops("compose", cwd=project)
    mlops("render", "--target", "onprem", cwd=project)
    return {n: b.decode() for n, b in files(project / UNITS_DIR).items()}


HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=\n",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service",
    "User=mlops",
)


def test_the_units_run_serve_and_sync_hardened(project: Path) -> None:
    units = _units(project)
    serve, sync = units["mlops-onprem-serve.service"], units["mlops-onprem-sync.service"]
    assert f"ExecStart={BIN / 'mlops'} serve --target onprem\n" in serve
    assert f"ExecStart={BIN / 'mlops'} sync --target onprem --watch --remote origin" in sync
    for unit in (serve, sync):
        for directive in HARDENING:
            assert directive in unit, directive
    assert f"ReadWritePaths={project}/logs/local\n" in serve  # the log, nothing else
    assert f"ReadWritePaths={project}\n" in sync  # the checkout it fast-forwards


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_the_units_pass_systemd_analyze(project: Path) -> None:
    _units(project)
    paths = sorted(str(p) for p in (project / UNITS_DIR).iterdir())
    proc = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    for path in paths:  # exposure 0 (locked down) .. 10 (exposed): "OK" is below 2
        security = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", "--threshold=20", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert security.returncode == 0, security.stdout[-800:]


def test_install_units_writes_refuses_a_different_file_and_forces(
    project: Path, tmp_path: Path
) -> None:
    units = _units(project)
    where = tmp_path / "system"
    where.mkdir()
    args = ("install-units", "--target", "onprem", "--dir", str(where))
    out = mlops(*args, cwd=project)
    assert out.stdout.count(": installed") == 2
    assert {n: t.encode() for n, t in units.items()} == files(where)
    out = mlops(*args, cwd=project)
    assert out.stdout.count(": unchanged") == 2
    (where / "mlops-onprem-sync.service").write_text("[Unit]\n# mine\n")
    before = files(where)
    out = mlops(*args, cwd=project, check=False)
    assert out.returncode == 2
    assert "mlops-onprem-sync.service exists with other content: not overwritten" in out.stderr
    assert files(where) == before
    assert "mlops-onprem-sync.service: replaced" in mlops(*args, "--force", cwd=project).stdout
    assert {n: t.encode() for n, t in units.items()} == files(where)
    bad = mlops("install-units", "--target", "k8s", "--dir", str(where), cwd=project, check=False)
    assert bad.returncode == 2 and "not a systemd target" in bad.stderr


# --------------------------------------------------------------------------------- status
def _kubectl(release: str | None) -> Any:
    calls: list[list[str]] = []

    def run(args: Any, root: Path) -> str | None:
        calls.append(list(args))
        if release is None:
            return None
        return json.dumps({"metadata": {"annotations": {"gitops-mlops/release": release}}})

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_status_compares_rendered_declared_and_live(project: Path) -> None:
    spec = load(project).data["deploy"]["targets"]["k8s"]
    text = "\n".join(target_lines(project, "k8s", spec, None))
    assert "rendered: nothing yet (no image recorded" in text
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    text = "\n".join(target_lines(project, "k8s", spec, None))
    assert f"rendered: {R1} (deployment) — matches the declared release" in text
    assert "live: not checked (give --kubeconfig to read the cluster)" in text
    config_file = project / "kubeconfig"
    kubectl = _kubectl(R1)
    text = "\n".join(target_lines(project, "k8s", spec, None, config_file, kubectl))
    assert f"live: {R1} (deployment/mlops-k8s in mlops) — in sync" in text
    get = ["get", "deployment", "mlops-k8s", "--output", "json", "--request-timeout", "20s"]
    assert kubectl.calls == [["--kubeconfig", str(config_file), "--namespace", "mlops", *get]]
    text = "\n".join(target_lines(project, "k8s", spec, None, config_file, _kubectl(R2)))
    assert f"live: {R2} (deployment/mlops-k8s in mlops) — OUT OF SYNC" in text
    text = "\n".join(target_lines(project, "k8s", spec, None, config_file, _kubectl(None)))
    assert "live: not checked (no kubectl)" in text


def test_status_asks_a_systemd_target_for_its_version(project: Path) -> None:
    import httpx

    spec = load(project).data["deploy"]["targets"]["onprem"]
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        body = {"release": R1, "bundle": {"id": SHA1[:16], "sha256": SHA1}, "target": "onprem"}
        return httpx.Response(200, json=body)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    text = "\n".join(target_lines(project, "onprem", spec, client))
    assert seen == ["http://127.0.0.1:8000/version"] and "in sync" in text


# ------------------------------------------------------------------- release, pr report
def test_release_renders_inside_its_transaction(project: Path) -> None:
    """`mlops release` renders the released environments journaled with the records: a failure
    after the rendering leaves every file as it was."""
    from pipeline.journal import transaction

    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    (project / K8S_DIR / "service.yaml").unlink()  # stale: a rendering would change it
    (project / UNITS_DIR).mkdir(parents=True)
    before = {**files(project / K8S_DIR), **files(project / UNITS_DIR)}
    params = load(project)
    with pytest.raises(RuntimeError), transaction(project, "test") as journal:
        done = environments.apply(project, params, ["local", "k8s", "onprem"], journal)
        assert [r.target for r in done] == ["k8s", "onprem"]
        assert (project / K8S_DIR / "service.yaml").exists()
        raise RuntimeError("a later step of the release failed")
    assert {**files(project / K8S_DIR), **files(project / UNITS_DIR)} == before
    assert not (project / UNITS_DIR).exists() or not any((project / UNITS_DIR).iterdir())


def test_the_pr_report_shows_the_rendered_diff(project: Path) -> None:
    from pipeline import pr_report

    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    mlops("render", cwd=project)
    head = pr_report.tree_reader(project)
    snapshot = {
        p.relative_to(project).as_posix(): p.read_text()
        for p in [project / "params.yaml", *(project / "deploy").rglob("*.*")]
        if p.is_file()
    }
    write_json(project / "deploy/k8s.json", record("k8s", R2, SHA2, parent=R1))
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST2, cwd=project)
    section = "\n".join(pr_report.environments_section(snapshot.get, head))
    assert "### Deployment environments (rendered desired state)" in section
    assert "+++ b/deploy/k8s/k8s/deployment.yaml" in section
    assert f"-    gitops-mlops/release: {R1}" in section
    assert f"+    gitops-mlops/release: {R2}" in section
    assert "service.yaml" not in section and "onprem" not in section  # unchanged
    assert pr_report.environments_section(snapshot.get, snapshot.get) == []


def test_dumps_are_stable() -> None:
    """The YAML writer never emits anchors (a probe's httpGet is written out each time)."""
    text = environments._dump({"a": (shared := {"x": 1}), "b": shared})
    assert "&" not in text and "*" not in text
    assert dumps_json({"b": 1, "a": 2}) == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert kubernetes.app_name("edge_eu") == "mlops-edge-eu"
