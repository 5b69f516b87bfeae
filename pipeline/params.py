"""The typed params tree: params.yaml, validated, as one frozen dataclass per section.

`pipeline.config.load_config` reads params.yaml, re-validates it (`dvc exp run -S` composes
without our checks) and builds this tree once; stages, commands and the service take their
settings from it and never rebuild a section from a dict. Construction checks nothing: the JSON
Schemas under pipeline/schemas/ and `pipeline.validation` are the one source of what is allowed,
and conf/ the one source of every value. No section type has a default: a key a declaration may
leave out (a dataset column's `role`, a simulated effect's `columns`, a per-column drift
override) takes the `default` its JSON Schema declares (`validation.schema_defaults`), and every
other key is required.

The develop sections (dataset, split, preprocessing, candidates, selection, train) are typed in
`pipeline.settings`; the sections the other stages read are typed here, where every stage can
import them (the deploy, monitor and maintain modules re-export their own):

    Params
      data            the validated mapping itself (digests of config slices, writing params)
      root            the project root (the service's log and secret paths are absolute)
      project         ProjectSpec(name, seed)
      task            "classification" | "regression"
      train           TrainSpec                        pipeline.settings
      dataset         DatasetSpec (columns: ColumnSpec) pipeline.settings
      split           SplitSpec                        pipeline.settings
      preprocessing   PreprocessingSpec                pipeline.settings
      candidates      {name: CandidateSpec (search: SearchSpec)}, in declared order
      selection       SelectionSpec (baseline: BaselineSpec, tolerance: Amount)
      deploy          DeploySpec: targets {name: TargetSpec (gates: GateSpec (compare:
                      CompareSpec, smoke: SmokeSpec), pin, rejected, digest,
                      serve: ServeSettings | None, batch: BatchSettings | None,
                      strategy: StrategySpec (steps: StepSpec, analysis: AnalysisSpec)
                      | None, image: ImageSpec | None, kubernetes: KubernetesSpec | None,
                      systemd: SystemdSpec | None)}
      monitor         MonitorSettings (windows: WindowSpec, drift: DriftSettings,
                      prediction: MethodChoice, performance: PerformanceSpec)
      simulate        SimulateSettings (scenarios: Scenario, selectors: Selector)
      maintain        MaintainSpec (target, policies: MaintainSettings (rollback:
                      RollbackSpec | None))
      compute         ComputeSpec (local_cluster: LocalClusterSpec | None); read by
                      `pipeline.compute`, never a stage's params dependency
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.io import dumps_json, sha256_bytes
from pipeline.paths import environment_dir
from pipeline.release_record import parse_release_id
from pipeline.settings import (
    Amount,
    CandidateSpec,
    DatasetSpec,
    PreprocessingSpec,
    SelectionSpec,
    SplitSpec,
    Task,
    TrainSpec,
    candidates,
)


# ------------------------------------------------------------------------------ deploy targets
@dataclass(frozen=True, slots=True)
class AuthSettings:
    token_env: str  # name of the environment variable holding the bearer token
    token_file: Path | None  # or a file holding it (a mounted secret), relative to the root
    predict_requires_token: bool


@dataclass(frozen=True, slots=True)
class RedactSettings:
    """What the service does with the columns the dataset marks `personal: true` before a
    prediction is queued for the log: `drop` them, or replace each value by a keyed hash
    (HMAC-SHA256 with a secret key from `key_env` or `key_file`)."""

    personal: tuple[str, ...]  # columns marked personal in the dataset schema
    method: Literal["drop", "hash"]
    key_env: str
    key_file: Path | None  # absolute


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Typed settings of one service target (`deploy.targets.<name>.serve`). Secrets (the
    bearer token, the log hash key) are never here: only the variable or file naming them
    (`pipeline.deploy.service.secrets` reads them)."""

    target: str
    host: str
    port: int
    reject_unseen: bool  # unseen_policy == "reject"
    threads: int  # OpenMP/BLAS threads of the model thread
    auth: AuthSettings
    max_body_bytes: int
    max_records: int
    feedback_per_minute: int
    max_batch: int
    max_wait_s: float
    log_dir: Path  # absolute
    rotate_bytes: int
    keep: int
    max_age_days: float | None  # log files whose newest entry is older are deleted
    redact: RedactSettings
    docs: bool  # serve /docs (Swagger UI, pinned, from a CDN)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], target: str, root: Path) -> ServeSettings:
        """The settings of service target `target` (a ConfigError when there is none)."""
        targets = params["deploy"]["targets"]
        _check_service(_kinds(targets), target)
        dataset = DatasetSpec.from_params(params["dataset"])
        return cls.build(target, targets[target]["serve"], _personal(dataset), root)

    @classmethod
    def build(
        cls, target: str, serve: Mapping[str, Any], personal: tuple[str, ...], root: Path
    ) -> ServeSettings:
        auth, limits, batching, log = (
            serve["auth"],
            serve["limits"],
            serve["batching"],
            serve["log"],
        )
        token_file = auth.get("token_file")
        redact = log["redact"]
        key_file = redact.get("key_file")
        return cls(
            target=target,
            host=serve["host"],
            port=int(serve["port"]),
            reject_unseen=serve["unseen_policy"] == "reject",
            threads=int(serve["threads"]),
            auth=AuthSettings(
                token_env=auth["token_env"],
                token_file=None if token_file is None else root / token_file,
                predict_requires_token=bool(auth["predict_requires_token"]),
            ),
            max_body_bytes=int(limits["max_body_bytes"]),
            max_records=int(limits["max_records"]),
            feedback_per_minute=int(limits["feedback_per_minute"]),
            max_batch=int(batching["max_batch"]),
            max_wait_s=float(batching["max_wait_ms"]) / 1000.0,
            log_dir=root / log["dir"],
            rotate_bytes=int(log["rotate_bytes"]),
            keep=int(log["keep"]),
            max_age_days=None if log["max_age_days"] is None else float(log["max_age_days"]),
            redact=RedactSettings(
                personal=personal,
                method=redact["method"],
                key_env=redact["key_env"],
                key_file=None if key_file is None else root / key_file,
            ),
            docs=bool(serve["docs"]),
        )


# ------------------------------------------------------------------ deployment environments
# Kinds of target that run `mlops serve` (same gates, serve settings and strategy): a service on
# this machine, or the same service rendered as the desired state of an environment (manifests
# for a Kubernetes cluster's GitOps controller, units for on-premise machines).
SERVED_KINDS = ("service", "kubernetes", "systemd")
ENVIRONMENT_KINDS = ("kubernetes", "systemd")


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """The container image of a kubernetes target (`image`): where it is pushed, and whether the
    released bundle is fetched from the DVC remote at start or baked into the image. Its digest
    is not config: `mlops image record` writes it beside the release (`pipeline.deploy.image`)."""

    repository: str
    bundle: Literal["fetch", "baked"]


@dataclass(frozen=True, slots=True)
class KubernetesSpec:
    """What a kubernetes target's manifests declare (`kubernetes`; meanings in
    conf/deploy/kubernetes.yaml and the schema). `path` is relative to the project root."""

    path: Path
    namespace: str
    project_dir: str
    log_dir: str  # serve.log.dir inside the container (under project_dir when relative)
    run_as_user: int
    replicas: int
    requests: Mapping[str, str]  # cpu, memory: Kubernetes quantities as declared
    limits: Mapping[str, str]
    autoscaling: Mapping[str, int] | None  # min_replicas, max_replicas, cpu_utilization
    min_available: int
    probe_period: int
    probe_failures: int
    startup_seconds: int
    service_type: str
    service_port: int
    ingress_namespaces: tuple[str, ...]
    egress_https_cidrs: tuple[str, ...]
    secret: str | None
    kserve: bool

    @classmethod
    def from_params(cls, target: str, spec: Mapping[str, Any], log_dir: str) -> KubernetesSpec:
        """`log_dir`: the target's serve.log.dir, as declared."""
        probes, network = spec["probes"], spec["network"]
        scaling = spec["autoscaling"]
        return cls(
            path=Path(spec["path"]) if spec["path"] else environment_dir("kubernetes", target),
            namespace=spec["namespace"],
            project_dir=spec["project_dir"],
            log_dir=str(PurePosixPath(spec["project_dir"]) / log_dir),
            run_as_user=int(spec["run_as_user"]),
            replicas=int(spec["replicas"]),
            requests=MappingProxyType(dict(spec["resources"]["requests"])),
            limits=MappingProxyType(dict(spec["resources"]["limits"])),
            autoscaling=None if scaling is None else MappingProxyType(dict(scaling)),
            min_available=int(spec["disruption"]["min_available"]),
            probe_period=int(probes["period_seconds"]),
            probe_failures=int(probes["failure_threshold"]),
            startup_seconds=int(probes["startup_seconds"]),
            service_type=spec["service"]["type"],
            service_port=int(spec["service"]["port"]),
            ingress_namespaces=tuple(network["ingress_namespaces"]),
            egress_https_cidrs=tuple(network["egress_https_cidrs"]),
            secret=spec["secret"],
            kserve=bool(spec["kserve"]),
        )


@dataclass(frozen=True, slots=True)
class SystemdSpec:
    """What a systemd target's units declare (`systemd`; meanings in conf/deploy/onprem.yaml
    and the schema). `path` is relative to the project root; the others are paths on the
    machine the units run on."""

    path: Path
    checkout: str
    log_dir: str  # serve.log.dir on the machine (under checkout when relative)
    mlops: str
    user: str
    group: str
    environment_file: str | None
    sync_remote: str
    sync_branch: str
    sync_interval: float

    @classmethod
    def from_params(cls, target: str, spec: Mapping[str, Any], log_dir: str) -> SystemdSpec:
        """`log_dir`: the target's serve.log.dir, as declared."""
        sync = spec["sync"]
        return cls(
            path=Path(spec["path"]) if spec["path"] else environment_dir("systemd", target),
            checkout=spec["checkout"],
            log_dir=str(PurePosixPath(spec["checkout"]) / log_dir),
            mlops=spec["mlops"],
            user=spec["user"],
            group=spec["group"],
            environment_file=spec["environment_file"],
            sync_remote=sync["remote"],
            sync_branch=sync["branch"],
            sync_interval=float(sync["interval"]),
        )


def _personal(dataset: DatasetSpec) -> tuple[str, ...]:
    return tuple(c.name for c in dataset.columns if c.personal)


def settings_digest(target: Mapping[str, Any]) -> str:
    """sha256 of exactly the settings a target's gate reads, as declared: a report made under
    other settings is stale, and `mlops release` refuses it."""
    data = {
        "kind": target["kind"],
        "gates": target["gates"],
        "pin": target["pin"],
        "rejected": list(target["rejected"]),
    }
    return sha256_bytes(dumps_json(data).encode())


def _kinds(targets: Mapping[str, Any]) -> dict[str, str]:
    return {name: spec["kind"] for name, spec in targets.items()}


def target_params(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`deploy.targets.<name>` of params read without validation (`mlops sync` on a deployment
    checkout), or a ConfigError naming the targets."""
    targets = params["deploy"]["targets"]
    _check_target(targets, name)
    spec: Mapping[str, Any] = targets[name]
    return spec


def _check_target(declared: Mapping[str, Any], name: str) -> None:
    if name not in declared:
        raise ConfigError(
            f"no deployment target {name!r}; declared: {', '.join(declared)}",
            hint="a target is a `deploy@deploy.targets.<name>: <file>` entry in conf/config.yaml",
        )


def _check_service(kinds: Mapping[str, str], name: str) -> None:
    if name not in kinds:
        raise ConfigError(
            f"no deployment target {name!r} in params.yaml",
            hint="declared targets: " + ", ".join(sorted(kinds)),
        )
    if kinds[name] not in SERVED_KINDS:
        raise ConfigError(
            f"target {name!r} is of kind {kinds[name]!r}, not a service",
            hint="`mlops serve` serves targets of kind " + ", ".join(SERVED_KINDS) + "; batch "
            "targets are scored with `mlops predict`",
        )


def _check_batch(kinds: Mapping[str, str], name: str) -> None:
    _check_target(kinds, name)
    if kinds[name] != "batch":
        raise ConfigError(
            f"deploy.targets.{name} is a {kinds[name]} target, not a batch target",
            hint="use --target with a target of kind batch (e.g. --target batch)",
        )


@dataclass(frozen=True, slots=True)
class BatchSettings:
    on_bad_rows: str  # fail | skip
    unseen_policy: str  # flag | reject
    chunk_rows: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any], target: str) -> BatchSettings:
        """The settings of batch target `target` (a ConfigError when there is none)."""
        targets = params["deploy"]["targets"]
        _check_batch(_kinds(targets), target)
        return cls.build(targets[target]["batch"])

    @classmethod
    def build(cls, batch: Mapping[str, Any]) -> BatchSettings:
        return cls(batch["on_bad_rows"], batch["unseen_policy"], int(batch["chunk_rows"]))


@dataclass(frozen=True, slots=True)
class CompareSpec:
    """The compare gate (`gates.compare`): a paired bootstrap of the champion against the
    incumbent on the test split (`pipeline.paired_bootstrap`), judged by `mode` and `margin`."""

    metric: str
    mode: str  # non_inferiority | superiority
    margin: Amount  # relative: a share of the incumbent's score
    confidence: float
    resamples: int
    seed: int

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> CompareSpec:
        return cls(
            metric=spec["metric"],
            mode=spec["mode"],
            margin=Amount.parse(spec["margin"]),
            confidence=float(spec["confidence"]),
            resamples=int(spec["resamples"]),
            seed=int(spec["seed"]),
        )


@dataclass(frozen=True, slots=True)
class SmokeSpec:
    """The smoke test (`gates.smoke`): the bundle loaded in a fresh process scores `rows`
    held-out rows as recorded, within `score_tolerance`, on `threads` threads."""

    rows: int
    score_tolerance: float
    threads: int


@dataclass(frozen=True, slots=True)
class GateSpec:
    """A target's gates: absolute floors, floors relative to the trivial baseline the bundle
    records, the comparison with the incumbent and the smoke test."""

    floors: Mapping[str, float]  # as declared
    baseline: Mapping[str, Amount]  # beat the baseline by, per metric
    compare: CompareSpec
    smoke: SmokeSpec

    @classmethod
    def from_params(cls, gates: Mapping[str, Any]) -> GateSpec:
        smoke = gates["smoke"]
        return cls(
            floors=dict(gates["floors"] or {}),
            baseline={m: Amount.parse(a) for m, a in (gates["baseline"] or {}).items()},
            compare=CompareSpec.from_params(gates["compare"]),
            smoke=SmokeSpec(
                rows=int(smoke["rows"]),
                score_tolerance=float(smoke["score_tolerance"]),
                threads=int(smoke["threads"]),
            ),
        )


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step of a rollout: the candidate's share of traffic, and how much logged traffic the
    step needs before the analysis may advance it (candidate requests, logged span, or both)."""

    weight: float
    hold_requests: int | None
    hold_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        """As declared (and as `deploy/<target>.json` records it when a rollout starts)."""
        hold: dict[str, Any] = {}
        if self.hold_requests is not None:
            hold["requests"] = self.hold_requests
        if self.hold_seconds is not None:
            hold["seconds"] = self.hold_seconds
        return {"weight": self.weight, "hold": hold}

    @classmethod
    def from_params(cls, step: Mapping[str, Any]) -> StepSpec:
        hold = step["hold"]
        requests, seconds = hold.get("requests"), hold.get("seconds")
        return cls(
            float(step["weight"]),
            None if requests is None else int(requests),
            None if seconds is None else float(seconds),
        )


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """The thresholds a rollout step is judged by (`strategy.analysis`; meanings in
    conf/deploy/local.yaml and the schema)."""

    confidence: float
    max_error_rate: float
    max_latency_ratio: float
    min_agreement: float | None
    agreement_tolerance: float
    max_prediction_drift: float | None
    max_metric_drop: float | None
    min_labelled: int

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> AnalysisSpec:
        from pipeline.validation import schema_defaults

        spec = {**schema_defaults("deploy", "$defs", "analysis"), **spec}

        def optional(key: str) -> float | None:
            return None if spec[key] is None else float(spec[key])

        return cls(
            confidence=float(spec["confidence"]),
            max_error_rate=float(spec["max_error_rate"]),
            max_latency_ratio=float(spec["max_latency_ratio"]),
            min_agreement=optional("min_agreement"),
            agreement_tolerance=float(spec["agreement_tolerance"]),
            max_prediction_drift=optional("max_prediction_drift"),
            max_metric_drop=optional("max_metric_drop"),
            min_labelled=int(spec["min_labelled"]),
        )


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """How a new release reaches a service target's traffic: `direct` (at once), `shadow` or
    `canary` (a rollout recorded in `deploy/<target>.json`, stepped by `mlops rollout`)."""

    kind: Literal["direct", "shadow", "canary"]
    key: str | None  # canary routing field; None: the request id
    steps: tuple[StepSpec, ...]
    propose: Literal["pull_request", "commit"]  # how rollout.yml proposes a step
    analysis: AnalysisSpec

    @property
    def progressive(self) -> bool:
        return self.kind != "direct"

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> StrategySpec:
        return cls(
            kind=spec["kind"],
            key=spec["key"],
            steps=tuple(StepSpec.from_params(s) for s in spec["steps"]),
            propose=spec["propose"],
            analysis=AnalysisSpec.from_params(spec["analysis"]),
        )


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One deployment target: what its gate reads (kind, gates, pin, rejected: declared in
    dvc.yaml) and, by kind, its service or batch settings."""

    name: str
    kind: str
    gates: GateSpec
    pin: str | None
    rejected: tuple[str, ...]
    serve: ServeSettings | None  # the served kinds (SERVED_KINDS)
    batch: BatchSettings | None  # kind batch
    digest: str  # sha256 of the declared kind, gates, pin and rejected (see `settings_digest`)
    strategy: StrategySpec | None  # the served kinds (a batch target has no traffic to shift)
    image: ImageSpec | None  # kind kubernetes
    kubernetes: KubernetesSpec | None  # kind kubernetes
    systemd: SystemdSpec | None  # kind systemd

    @classmethod
    def build(
        cls, name: str, spec: Mapping[str, Any], dataset: DatasetSpec, root: Path
    ) -> TargetSpec:
        kind = spec["kind"]
        served = kind in SERVED_KINDS
        image = spec.get("image")
        return cls(
            name,
            kind,
            GateSpec.from_params(spec["gates"]),
            spec["pin"],
            tuple(spec["rejected"]),
            ServeSettings.build(name, spec["serve"], _personal(dataset), root) if served else None,
            BatchSettings.build(spec["batch"]) if kind == "batch" else None,
            settings_digest(spec),
            StrategySpec.from_params(spec["strategy"]) if served else None,
            ImageSpec(image["repository"], image["bundle"]) if image else None,
            KubernetesSpec.from_params(name, spec["kubernetes"], spec["serve"]["log"]["dir"])
            if kind == "kubernetes"
            else None,
            SystemdSpec.from_params(name, spec["systemd"], spec["serve"]["log"]["dir"])
            if kind == "systemd"
            else None,
        )

    @property
    def served(self) -> bool:
        """Whether the target runs `mlops serve` (a service, or one an environment runs)."""
        return self.kind in SERVED_KINDS

    @property
    def rejected_bundles(self) -> dict[str, str]:
        """bundle id -> the rejected release that named it."""
        return {parse_release_id(r)[1]: r for r in self.rejected}


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """`deploy.targets`, in declared order; a lookup of an undeclared target (or of a target
    of another kind) is a ConfigError naming what is declared."""

    targets: Mapping[str, TargetSpec]

    def target(self, name: str) -> TargetSpec:
        _check_target(self._kinds(), name)
        return self.targets[name]

    def service(self, name: str) -> ServeSettings:
        _check_service(self._kinds(), name)
        serve = self.targets[name].serve
        assert serve is not None
        return serve

    def batch(self, name: str) -> BatchSettings:
        _check_batch(self._kinds(), name)
        batch = self.targets[name].batch
        assert batch is not None
        return batch

    def _kinds(self) -> dict[str, str]:
        return {name: target.kind for name, target in self.targets.items()}


# ------------------------------------------------------------------------------------- monitor
_SPAN = re.compile(r"([1-9][0-9]*)(s|min|h|d|w)")  # matched whole (fullmatch)
_SPAN_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}


def span_seconds(text: str) -> int:
    """Seconds in a span such as `15min`, `6h`, `1d`, `1w` (ValueError for anything else)."""
    match = _SPAN.fullmatch(text)
    if not match:
        raise ValueError(f"not a time span: {text!r} (expected e.g. 30min, 6h, 1d, 1w)")
    return int(match.group(1)) * _SPAN_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class MethodChoice:
    """A drift method name (or "auto") and a threshold (None: the method's default)."""

    method: str
    threshold: float | None


@dataclass(frozen=True, slots=True)
class ColumnOverride:
    """One column's drift override; None takes the value of the column's type."""

    method: str | None
    threshold: float | None
    null_share_max_increase: float | None


@dataclass(frozen=True, slots=True)
class SketchSettings:
    k: int  # compactor capacity: a-priori rank error (log2(n/k) + 4) / k
    tail: int  # extreme values kept exactly at each end
    batch_rows: int  # rows per Parquet batch: bounds memory
    distinct_limit: int  # exact value counts kept per numeric column up to this many


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How drift is decided (`monitor.drift` and `monitor.null_share`); see
    `pipeline.monitor.drift` for what each setting means and for the checks a schema cannot
    make (`check_settings`)."""

    numeric: MethodChoice
    categorical: MethodChoice
    columns: Mapping[str, ColumnOverride]
    small_reference_rows: int
    numeric_low_cardinality: int
    drift_share: float
    null_share_max_increase: float
    mode: Literal["exact", "sketch"]
    sketch: SketchSettings
    workers: int | None

    @classmethod
    def from_params(cls, monitor: Mapping[str, Any]) -> DriftSettings:
        """From the validated `monitor` section (its `drift` and `null_share` keys)."""
        from pipeline.validation import schema_defaults

        drift = monitor["drift"]
        inherit = schema_defaults("monitor", "$defs", "column")
        return cls(
            numeric=_choice(drift["numeric"]),
            categorical=_choice(drift["categorical"]),
            columns={
                str(name): ColumnOverride(**{**inherit, **spec})
                for name, spec in (drift["columns"] or {}).items()
            },
            small_reference_rows=drift["small_reference_rows"],
            numeric_low_cardinality=drift["numeric_low_cardinality"],
            drift_share=drift["drift_share"],
            null_share_max_increase=monitor["null_share"]["max_increase"],
            mode=drift["mode"],
            sketch=SketchSettings(**drift["sketch"]),
            workers=drift["workers"],
        )

    def choice_for(self, name: str, kind: str) -> tuple[str, float | None, float]:
        """Method name (or "auto"), threshold override and null-share limit for one column."""
        base = self.numeric if kind == "numeric" else self.categorical
        over = self.columns.get(name)
        method = base.method if over is None or over.method is None else over.method
        threshold = base.threshold if over is None or over.threshold is None else over.threshold
        limit = None if over is None else over.null_share_max_increase
        return method, threshold, self.null_share_max_increase if limit is None else limit


def _choice(spec: Mapping[str, Any]) -> MethodChoice:
    return MethodChoice(method=spec["method"], threshold=spec["threshold"])


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How pooled traffic is cut into monitoring windows (see `pipeline.monitor.windowing`);
    `mlops logs snapshot` cuts the prediction log into windows of `rows` too."""

    by: Literal["rows", "time"]
    rows: int
    span: str
    min_rows: int

    @property
    def span_seconds(self) -> int:
        return span_seconds(self.span)


@dataclass(frozen=True, slots=True)
class PerformanceSpec:
    """Checks on labelled rows against floors and against the bundle's test metrics."""

    min_labelled: int
    floors: Mapping[str, float]
    baseline: Mapping[str, Amount]  # beat the bundle's baseline by
    max_drop: float | None  # relative to the test value; None: no relative check
    max_drop_by_metric: Mapping[str, float]  # absolute, per metric

    def allowed_drop(self, metric: str, test_value: float) -> float | None:
        """How much `metric` may worsen from its test value (None: not checked)."""
        if metric in self.max_drop_by_metric:
            return float(self.max_drop_by_metric[metric])
        if self.max_drop is None:
            return None
        return float(self.max_drop) * abs(test_value)


@dataclass(frozen=True, slots=True)
class ReportSpec:
    """How much report.json and report.html hold (`monitor.report`): the latest
    `detail_windows` windows one by one, the whole history in `history_buckets` buckets."""

    detail_windows: int
    history_buckets: int


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """Everything the `monitor` stage decides with."""

    target: str
    task: str
    windows: WindowSpec
    drift: DriftSettings
    prediction: MethodChoice
    performance: PerformanceSpec
    report: ReportSpec
    keep_raw_days: int | None  # `monitor.retention`: raw windows kept this long (None: all)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MonitorSettings:
        """From validated params (the `monitor` section and `task`)."""
        from pipeline.validation import schema_defaults

        monitor = params["monitor"]
        perf = monitor["performance"]
        report = {**schema_defaults("monitor", "$defs", "report"), **(monitor.get("report") or {})}
        retention = {
            **schema_defaults("monitor", "$defs", "retention"),
            **(monitor.get("retention") or {}),
        }
        return cls(
            target=monitor["target"],
            task=params["task"],
            windows=WindowSpec(**monitor["windows"]),
            drift=DriftSettings.from_params(monitor),
            prediction=_choice(monitor["prediction"]),
            performance=PerformanceSpec(
                min_labelled=int(perf["min_labelled"]),
                floors={k: float(v) for k, v in (perf["floors"] or {}).items()},
                baseline={k: Amount.parse(v) for k, v in (perf["baseline"] or {}).items()},
                max_drop=None if perf["max_drop"] is None else float(perf["max_drop"]),
                max_drop_by_metric={
                    k: float(v) for k, v in (perf["max_drop_by_metric"] or {}).items()
                },
            ),
            report=ReportSpec(**report),
            keep_raw_days=retention["keep_raw_days"],
        )


# ------------------------------------------------------------------------------------ simulate
EFFECTS = ("shift", "category_mix", "missing", "label_noise")  # applied in this order
SELECTED = ("shift", "category_mix", "missing")  # the effects that act on chosen columns


@dataclass(frozen=True, slots=True)
class Selector:
    """Which columns an effect acts on: a kind (numeric | categorical | any) or a list of names,
    of which `count` (when set) or a `fraction` are picked with the scenario's Generator."""

    columns: str | tuple[str, ...]
    fraction: float
    count: int | None

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> Selector:
        from pipeline.validation import schema_defaults

        spec = {**schema_defaults("simulate", "$defs", "selector"), **spec}
        cols = spec["columns"]
        return cls(
            columns=cols if isinstance(cols, str) else tuple(cols),
            fraction=float(spec["fraction"]),
            count=spec["count"],
        )


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    rows: int
    effects: Mapping[str, Mapping[str, Any]]  # effect name -> its settings, in EFFECTS order
    selectors: Mapping[str, Selector]  # effect name -> its columns (the effects that pick some)


@dataclass(frozen=True, slots=True)
class SimulateSettings:
    seed: int
    start: str
    spacing_seconds: float
    rows: int
    labelled: float
    low_cardinality: int
    scenarios: tuple[Scenario, ...]

    @classmethod
    def from_params(cls, sim: Mapping[str, Any]) -> SimulateSettings:
        scenarios = []
        for name, spec in sim["scenarios"].items():
            spec = dict(spec or {})
            effects = {e: dict(spec[e]) for e in EFFECTS if spec.get(e) is not None}
            selectors = {e: Selector.from_params(s) for e, s in effects.items() if e in SELECTED}
            rows = int(spec.get("rows") or sim["rows"])  # a scenario's own size, else the rows
            scenarios.append(Scenario(name, rows, effects, selectors))
        return cls(
            seed=int(sim["seed"]),
            start=str(sim["start"]),
            spacing_seconds=float(sim["spacing_seconds"]),
            rows=int(sim["rows"]),
            labelled=float(sim["labelled"]),
            low_cardinality=int(sim["low_cardinality"]),
            scenarios=tuple(scenarios),
        )


# ------------------------------------------------------------------------------------ maintain
@dataclass(frozen=True, slots=True)
class RollbackSpec:
    """The rollback policy: a paired bootstrap of the previous release against the live one
    on the live release's labelled production rows (at least `min_labelled`)."""

    metric: str
    margin: Amount  # relative: a share of the live release's score on those rows
    confidence: float
    resamples: int
    seed: int
    min_labelled: int

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> RollbackSpec:
        return cls(
            metric=spec["metric"],
            margin=Amount.parse(spec["margin"]),
            confidence=float(spec["confidence"]),
            resamples=int(spec["resamples"]),
            seed=int(spec["seed"]),
            min_labelled=int(spec["min_labelled"]),
        )


@dataclass(frozen=True, slots=True)
class MaintainSettings:
    """The maintenance policies (`maintain.policies`, a disabled one as None or empty) and the
    cooldown (`maintain.cooldown_days`)."""

    drift_consecutive: int | None  # retrain after this many drifted windows in a row
    performance: bool  # retrain when the newest judged window breaks a performance check
    max_age_days: float | None  # retrain when the live release has served this long
    new_labels: int | None  # retrain when this many labelled rows arrived since the last retrain
    rollback: RollbackSpec | None
    alert_checks: tuple[str, ...]  # other violated checks that raise an alert
    cooldown_days: float

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> MaintainSettings:
        pol = data["policies"]
        on = {k: v for k, v in pol.items() if v["enabled"]}
        return cls(
            drift_consecutive=on["drift"]["consecutive"] if "drift" in on else None,
            performance="performance" in on,
            max_age_days=on["age"]["max_days"] if "age" in on else None,
            new_labels=on["new_labels"]["min_rows"] if "new_labels" in on else None,
            rollback=RollbackSpec.from_params(on["rollback"]) if "rollback" in on else None,
            alert_checks=tuple(on["alert"]["checks"]) if "alert" in on else (),
            cooldown_days=float(data["cooldown_days"]),
        )


@dataclass(frozen=True, slots=True)
class MaintainSpec:
    target: str  # the deployment target maintained
    policies: MaintainSettings


# ------------------------------------------------------------------------------------- compute
@dataclass(frozen=True, slots=True)
class LocalClusterSpec:
    """The `distributed.LocalCluster` started (on 127.0.0.1) when `compute.address` is null."""

    n_workers: int
    threads_per_worker: int
    memory_limit: str  # as Dask parses it, e.g. 2GiB


@dataclass(frozen=True, slots=True)
class ComputeSpec:
    """Where work runs (`compute`): `local` (this process and its joblib workers) or `dask`
    (a scheduler at `address`, or a LocalCluster when it is None). Only `pipeline.compute`
    acts on it; no result depends on it, so no stage lists it among its params."""

    kind: Literal["local", "dask"]
    address: str | None
    connect_timeout_s: float
    local_cluster: LocalClusterSpec | None  # kind dask
    partition_rows: int | None  # kind dask: rows per batch-scoring task
    min_rows: int  # kind dask: work on fewer input rows stays in this process (local: 0)

    @classmethod
    def from_params(cls, spec: Mapping[str, Any]) -> ComputeSpec:
        if spec["kind"] == "local":
            return cls("local", None, 0.0, None, None, 0)
        return cls(
            "dask",
            spec["address"],
            float(spec["connect_timeout_s"]),
            LocalClusterSpec(**spec["local_cluster"]),
            int(spec["partition_rows"]),
            int(spec["min_rows"]),
        )


# ---------------------------------------------------------------------------------------- tree
@dataclass(frozen=True, slots=True)
class ProjectSpec:
    name: str
    seed: int  # every random choice (splits salt aside) derives from this


@dataclass(frozen=True, slots=True)
class Params:
    """params.yaml, validated, as one typed tree (see the module docstring)."""

    data: Mapping[str, Any]
    root: Path
    project: ProjectSpec
    task: Task
    train: TrainSpec
    dataset: DatasetSpec
    split: SplitSpec
    preprocessing: PreprocessingSpec
    candidates: Mapping[str, CandidateSpec]
    selection: SelectionSpec
    deploy: DeploySpec
    monitor: MonitorSettings
    simulate: SimulateSettings
    maintain: MaintainSpec
    compute: ComputeSpec


def build(data: Mapping[str, Any], root: Path) -> Params:
    """The tree of validated params `data` (what `config.load_params` returns); `root` makes
    the service's paths absolute."""
    dataset = DatasetSpec.from_params(data["dataset"])
    targets = {
        name: TargetSpec.build(name, spec, dataset, root)
        for name, spec in data["deploy"]["targets"].items()
    }
    return Params(
        data=MappingProxyType(dict(data)),
        root=root,
        project=ProjectSpec(data["project"]["name"], data["project"]["seed"]),
        task=data["task"],
        train=TrainSpec.from_params(data),
        dataset=dataset,
        split=SplitSpec.from_params(data["split"]),
        preprocessing=PreprocessingSpec.from_params(data["preprocessing"]),
        candidates=MappingProxyType({c.name: c for c in candidates(data)}),
        selection=SelectionSpec.from_params(data["selection"]),
        deploy=DeploySpec(MappingProxyType(targets)),
        monitor=MonitorSettings.from_params(data),
        simulate=SimulateSettings.from_params(data["simulate"]),
        maintain=MaintainSpec(
            data["maintain"]["target"], MaintainSettings.from_params(data["maintain"])
        ),
        compute=ComputeSpec.from_params(data["compute"]),
    )
