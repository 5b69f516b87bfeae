"""A kubernetes target's desired state: the manifests a GitOps controller (Argo CD, Flux) applies.

`render` is a pure function of the target's config and its image record (no clock, no cluster):
the same inputs give the same objects, and `pipeline.deploy.environments` writes them as YAML
with sorted keys, one object per file, plus a `kustomization.yaml` listing them (what Argo CD and
Flux point at):

    deployment.yaml       apps/v1 Deployment (direct and shadow strategies), or
    rollout.yaml          argoproj.io/v1alpha1 Rollout (canary): our steps as setWeight + pause
    service.yaml          v1 Service on serve.port (named port http)
    hpa.yaml              autoscaling/v2 HorizontalPodAutoscaler (kubernetes.autoscaling)
    pdb.yaml              policy/v1 PodDisruptionBudget
    networkpolicy.yaml    networking.k8s.io/v1 NetworkPolicy: ingress to the port only, egress
                          to DNS (and HTTPS to the DVC remote when the bundle is fetched)
    inferenceservice.yaml serving.kserve.io/v1beta1 InferenceService (kubernetes.kserve)

The pods run the image by digest (`deploy/images/<target>.json`), as a non-root user with a
read-only root filesystem, no capabilities, the runtime's default seccomp profile and no
service-account token; writable paths are emptyDir volumes (/tmp, the prediction log, and the
bundle cache when the bundle is fetched). The release, bundle digest and image digest are
annotations of the workload and of its pod template (a new release rolls the pods), and the
container's environment says what to serve and check: MLOPS_TARGET, MLOPS_RELEASE,
MLOPS_BUNDLE_SHA256, MLOPS_BUNDLE_MODE, and MLOPS_HOST / MLOPS_PORT (serve.host, serve.port).
The image's own entrypoint (the Dockerfile's) starts the service: no command is rendered.

A canary strategy's steps map to Argo Rollouts steps: each `weight` becomes `setWeight` (percent)
followed by a `pause`, of the hold's `seconds` when it declares some, else indefinite (a hold in
requests is judged from the prediction log by `mlops rollout analyze`, which Argo does not read:
promote the paused step with `kubectl argo rollouts promote` when the analysis says so). Shadow
scoring happens inside one service process, so a shadow target renders a plain Deployment of
the stable release.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pipeline.deploy.image import ImageRecord
from pipeline.params import TargetSpec

# every file a rendering may hold (readers that cannot list a folder, such as the pull-request
# report reading a git revision, look for these)
FILES = (
    "deployment.yaml",
    "rollout.yaml",
    "service.yaml",
    "hpa.yaml",
    "pdb.yaml",
    "networkpolicy.yaml",
    "inferenceservice.yaml",
    "kustomization.yaml",
)
ANNOTATION = "gitops-mlops"  # annotation prefix: gitops-mlops/release, ...
CONTAINER = "service"
HTTP = "http"
PROBE_PATH = "/health"


def app_name(target: str) -> str:
    """The objects' name: mlops-<target>, a DNS label (underscores become dashes)."""
    return "mlops-" + target.replace("_", "-")


KSERVE = "-kserve"  # the InferenceService's pods: their own instance, out of the Service


PART_OF = "app.kubernetes.io/part-of"  # every pod of the target: what the NetworkPolicy selects


def _labels(target: str, suffix: str = "") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "gitops-mlops",
        "app.kubernetes.io/instance": app_name(target) + suffix,
        PART_OF: app_name(target),
        "app.kubernetes.io/component": "model-service",
        "app.kubernetes.io/managed-by": "mlops-render",
    }


def _selector(target: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": app_name(target)}


def _metadata(
    spec: TargetSpec, annotations: dict[str, str] | None = None, suffix: str = ""
) -> dict[str, Any]:
    assert spec.kubernetes is not None
    meta: dict[str, Any] = {
        "name": app_name(spec.name) + suffix,
        "namespace": spec.kubernetes.namespace,
        "labels": _labels(spec.name, suffix),
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def release_annotations(image: ImageRecord) -> dict[str, str]:
    """What the pods serve: the release, its bundle digest and the image digest."""
    return {
        f"{ANNOTATION}/release": image.release,
        f"{ANNOTATION}/bundle-sha256": image.bundle_sha256,
        f"{ANNOTATION}/bundle-mode": image.mode,
        f"{ANNOTATION}/image-digest": image.digest,
    }


def _in_project(spec: TargetSpec, relative: str) -> str:
    """An absolute path inside the container for a project-relative path."""
    assert spec.kubernetes is not None
    return str(PurePosixPath(spec.kubernetes.project_dir) / relative)


def _volumes(spec: TargetSpec, image: ImageRecord) -> list[tuple[str, str, str]]:
    """(name, mount path, size limit) of every writable emptyDir: nothing else is writable."""
    assert spec.kubernetes is not None
    tmp = "/tmp"  # noqa: S108 - a mount point inside the container (an emptyDir), not a file
    volumes = [("tmp", tmp, "64Mi"), ("logs", spec.kubernetes.log_dir, "1Gi")]
    if image.mode == "fetch":  # the DVC cache and the bundle checked out of it
        volumes += [
            ("bundles", _in_project(spec, "bundles"), "2Gi"),
            ("dvc-cache", _in_project(spec, ".dvc/cache"), "2Gi"),
            ("dvc-tmp", _in_project(spec, ".dvc/tmp"), "64Mi"),
        ]
    return volumes


def _container(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    assert spec.kubernetes is not None and spec.serve is not None
    k8s = spec.kubernetes
    probe = {"httpGet": {"path": PROBE_PATH, "port": HTTP}, "periodSeconds": k8s.probe_period}
    env = [
        {"name": "MLOPS_TARGET", "value": spec.name},
        {"name": "MLOPS_RELEASE", "value": image.release},
        {"name": "MLOPS_BUNDLE_SHA256", "value": image.bundle_sha256},
        {"name": "MLOPS_BUNDLE_MODE", "value": image.mode},
        {"name": "MLOPS_HOST", "value": spec.serve.host},
        {"name": "MLOPS_PORT", "value": str(spec.serve.port)},
        {"name": "OMP_NUM_THREADS", "value": str(spec.serve.threads)},
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image.image,
        "imagePullPolicy": "Always",
        "env": env,
        "ports": [{"name": HTTP, "containerPort": spec.serve.port, "protocol": "TCP"}],
        "startupProbe": {
            **probe,
            "failureThreshold": max(1, -(-k8s.startup_seconds // k8s.probe_period)),
        },
        "readinessProbe": {**probe, "failureThreshold": k8s.probe_failures},
        "livenessProbe": {**probe, "failureThreshold": k8s.probe_failures},
        "resources": {"requests": dict(k8s.requests), "limits": dict(k8s.limits)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": k8s.run_as_user,
            "runAsGroup": k8s.run_as_user,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": name, "mountPath": path} for name, path, _ in _volumes(spec, image)
        ],
    }
    if k8s.secret is not None:
        container["envFrom"] = [{"secretRef": {"name": k8s.secret}}]
    return container


def _pod_spec(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    assert spec.kubernetes is not None
    uid = spec.kubernetes.run_as_user
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, image)],
        "volumes": [
            {"name": name, "emptyDir": {"sizeLimit": size}}
            for name, _, size in _volumes(spec, image)
        ],
    }


def _template(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    return {
        "metadata": {"labels": _labels(spec.name), "annotations": release_annotations(image)},
        "spec": _pod_spec(spec, image),
    }


def _workload_spec(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    assert spec.kubernetes is not None
    body: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": _selector(spec.name)},
        "template": _template(spec, image),
    }
    if spec.kubernetes.autoscaling is None:  # with a HorizontalPodAutoscaler, it owns replicas
        body["replicas"] = spec.kubernetes.replicas
    return body


def canary_steps(spec: TargetSpec) -> list[dict[str, Any]]:
    """Argo Rollouts steps of the target's canary strategy: setWeight (percent) and a pause,
    timed when the hold declares seconds, else indefinite (see the module docstring)."""
    assert spec.strategy is not None
    steps: list[dict[str, Any]] = []
    for step in spec.strategy.steps:
        steps.append({"setWeight": round(step.weight * 100)})
        if step.hold_seconds is not None and step.hold_requests is None:
            steps.append({"pause": {"duration": f"{int(-(-step.hold_seconds // 1))}s"}})
        else:
            steps.append({"pause": {}})
    return steps


def canary(spec: TargetSpec) -> bool:
    return spec.strategy is not None and spec.strategy.kind == "canary"


def workload(spec: TargetSpec, image: ImageRecord) -> tuple[str, dict[str, Any]]:
    """(file name, object): a Deployment, or a Rollout for a canary strategy."""
    if canary(spec):
        body = _workload_spec(spec, image)
        body["strategy"] = {"canary": {"steps": canary_steps(spec)}}
        return "rollout.yaml", {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": _metadata(spec, release_annotations(image)),
            "spec": body,
        }
    body = _workload_spec(spec, image)
    body["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    return "deployment.yaml", {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, release_annotations(image)),
        "spec": body,
    }


def service(spec: TargetSpec) -> dict[str, Any]:
    assert spec.kubernetes is not None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec),
        "spec": {
            "type": spec.kubernetes.service_type,
            "selector": _selector(spec.name),
            "ports": [
                {
                    "name": HTTP,
                    "port": spec.kubernetes.service_port,
                    "targetPort": HTTP,
                    "protocol": "TCP",
                }
            ],
        },
    }


def autoscaler(spec: TargetSpec, workload_kind: str, api: str) -> dict[str, Any] | None:
    assert spec.kubernetes is not None
    scaling = spec.kubernetes.autoscaling
    if scaling is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": api,
                "kind": workload_kind,
                "name": app_name(spec.name),
            },
            "minReplicas": scaling["min_replicas"],
            "maxReplicas": scaling["max_replicas"],
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling["cpu_utilization"],
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(spec: TargetSpec) -> dict[str, Any]:
    assert spec.kubernetes is not None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {
            "minAvailable": spec.kubernetes.min_available,
            "selector": {"matchLabels": _selector(spec.name)},
        },
    }


def _policy_selector(spec: TargetSpec) -> dict[str, Any]:
    """The target's pods, and the InferenceService's (part of the same target)."""
    return {"matchLabels": {PART_OF: app_name(spec.name)}}


def network_policy(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    """Ingress: the service port, from this namespace's pods and the declared namespaces.
    Egress: DNS; HTTPS to the declared CIDRs only when the bundle is fetched at start."""
    assert spec.kubernetes is not None and spec.serve is not None
    k8s = spec.kubernetes
    peers: list[dict[str, Any]] = [{"podSelector": {}}]
    peers += [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        for namespace in k8s.ingress_namespaces
    ]
    egress: list[dict[str, Any]] = [
        {
            "to": [{"namespaceSelector": {}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]
    if image.mode == "fetch" and k8s.egress_https_cidrs:
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in k8s.egress_https_cidrs],
                "ports": [{"protocol": "TCP", "port": 443}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec),
        "spec": {
            "podSelector": _policy_selector(spec),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": spec.serve.port}]}],
            "egress": egress,
        },
    }


def inference_service(spec: TargetSpec, image: ImageRecord) -> dict[str, Any]:
    """A KServe InferenceService whose predictor is the service's own container (a custom
    predictor: KServe routes to its HTTP port; /predict keeps its own request format)."""
    assert spec.kubernetes is not None
    k8s = spec.kubernetes
    pod = _pod_spec(spec, image)
    container = dict(pod["containers"][0], name="kserve-container")
    assert spec.serve is not None
    container["ports"] = [{"containerPort": spec.serve.port, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe] = {
            **container[probe],
            "httpGet": {"path": PROBE_PATH, "port": container["ports"][0]["containerPort"]},
        }
    scaling = k8s.autoscaling
    predictor: dict[str, Any] = {
        **{k: v for k, v in pod.items() if k != "containers"},
        "containers": [container],
        "minReplicas": scaling["min_replicas"] if scaling else k8s.replicas,
        "maxReplicas": scaling["max_replicas"] if scaling else k8s.replicas,
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": _metadata(spec, release_annotations(image), KSERVE),
        "spec": {"predictor": predictor},
    }


def render(spec: TargetSpec, image: ImageRecord) -> dict[str, dict[str, Any]]:
    """file name -> object, for the target's workload and everything around it."""
    name, workload_object = workload(spec, image)
    api = workload_object["apiVersion"]
    objects: dict[str, dict[str, Any]] = {
        name: workload_object,
        "service.yaml": service(spec),
        "pdb.yaml": disruption_budget(spec),
        "networkpolicy.yaml": network_policy(spec, image),
    }
    hpa = autoscaler(spec, workload_object["kind"], api)
    if hpa is not None:
        objects["hpa.yaml"] = hpa
    if spec.kubernetes is not None and spec.kubernetes.kserve:
        objects["inferenceservice.yaml"] = inference_service(spec, image)
    return objects


def kustomization(files: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
