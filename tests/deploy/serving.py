"""Helpers for the service tests: real bundles built the project's way, a project directory with
`deploy/<target>.json`, and a real uvicorn server on 127.0.0.1 with an ephemeral port.

Bundles come from the churn example (data/external/churn_example.csv, declared in
conf/dataset/churn_example.yaml): it has every column type the signature knows (float, int,
nullable int, category, nullable category, bool, datetime), so the service is tested against
all of them. Bundles are cached per session by their content (the same inputs give the same
bundle id).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from pipeline import bundle_format as bundle_mod
from pipeline.deploy.service.server import build, uvicorn_config
from pipeline.deploy.signature import Signature
from pipeline.io import save_model, write_json
from pipeline.params import ServeSettings
from pipeline.settings import CandidateSpec, DatasetSpec, PreprocessingSpec

ROOT = Path(__file__).resolve().parents[2]
TARGET = "local"
TOKEN = "s3cret-token-for-tests"  # secrets shorter than 16 characters are refused
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRAIN_ROWS = 900


@functools.cache
def churn(target: str | None = None) -> tuple[DatasetSpec, Any, Any]:
    """(spec, typed train frame, typed test frame) of the churn example; with `target`, a
    regression of that numeric column instead (the churn label is dropped)."""
    from pipeline.coercion import coerce
    from pipeline.tables import read_table

    conf = yaml.safe_load((ROOT / "conf/dataset/churn_example.yaml").read_text())["dataset"]
    raw = read_table(ROOT / conf["source"]["path"], "csv", conf["source"]["csv"])
    if target is not None:
        del conf["columns"][conf["target"]]
        raw = raw.drop(columns=[conf["target"]])
        conf["target"] = target
    spec = DatasetSpec.from_params(conf)
    typed = coerce(raw, spec)
    return spec, typed.iloc[:TRAIN_ROWS].reset_index(drop=True), typed.iloc[TRAIN_ROWS:]


def preprocessing() -> PreprocessingSpec:
    """conf/preprocessing/default.yaml, as the pipeline builds it."""
    conf = yaml.safe_load((ROOT / "conf/preprocessing/default.yaml").read_text())
    return PreprocessingSpec.from_params(conf)


@dataclass(frozen=True)
class Built:
    """A bundle under `bundles/<id>` and the deploy-file entry that releases it."""

    path: Path
    digest: str
    release: str

    @property
    def id(self) -> str:
        return self.digest[:16]

    def deploy_record(self, target: str = TARGET) -> dict[str, Any]:
        return {
            "target": target,
            "release": self.release,
            "parent": None,
            "bundle": {"id": self.id, "sha256": self.digest, "path": f"bundles/{self.id}"},
            "model": {"name": "test"},
            "metrics": {},
            "gates": {},
        }


@functools.cache
def _built(
    estimator: str,
    params: tuple[tuple[str, Any], ...],
    sequence: int,
    unseen: tuple[str, str] | None,
    regression_target: str | None = None,
) -> tuple[Path, str]:
    import tempfile

    from pipeline.factory import build_pipeline

    spec, train, test = churn(regression_target)
    task = "classification" if regression_target is None else "regression"
    if unseen is not None:  # a declared category training never sees
        column, value = unseen
        train = train[train[column] != value].reset_index(drop=True)
    features = [c.name for c in spec.features]
    candidate = CandidateSpec.from_params("m", {"_target_": estimator, **dict(params)}, 0)
    model = build_pipeline(candidate, spec, preprocessing())
    model.fit(train[features], train[spec.target])
    classes = [str(c) for c in model.classes_] if task == "classification" else None
    work = Path(tempfile.mkdtemp(prefix="bundle-"))
    atexit.register(shutil.rmtree, work, True)  # cached for the session, removed after it
    save_model(model, work / bundle_mod.MODEL)
    signature = Signature.build(spec, train, task, classes)
    write_json(work / bundle_mod.SIGNATURE, signature.to_dict())
    import pandas as pd

    offline = model.predict(test[features])
    pred = pd.DataFrame({"prediction": offline.astype(str) if classes else offline})
    pred.to_parquet(work / bundle_mod.PREDICTIONS, index=False)
    meta = {
        "model": {
            "name": "m",
            "estimator": estimator,
            "task": task,
            "classes": classes,
            "target": spec.target,
            "features": features,
        },
        "metrics": {},
        "versions": {},
        "sequence": sequence,
    }
    digest = bundle_mod.write_manifest(work, meta)
    return work, digest


def make_bundle(
    root: Path,
    estimator: str = "sklearn.linear_model.LogisticRegression",
    *,
    sequence: int = 1,
    unseen: tuple[str, str] | None = ("region", "west"),
    **params: Any,
) -> Built:
    """A real bundle copied into `root/bundles/<id>`. By default training never sees
    region=west (declared, so accepted, but flagged as unseen)."""
    if estimator.endswith("LogisticRegression"):
        params.setdefault("max_iter", 500)
    return _place(
        root, *_built(estimator, tuple(sorted(params.items())), sequence, unseen), sequence
    )


def _place(root: Path, work: Path, digest: str, sequence: int) -> Built:
    dest = root / "bundles" / digest[:16]
    if not dest.exists():
        shutil.copytree(work, dest)
    return Built(dest, digest, f"r{sequence:04d}-{digest[:16]}")


def regression_bundle(root: Path, target: str = "monthly_charges", sequence: int = 1) -> Built:
    """A real regression bundle (Ridge) predicting `target` from the other churn columns."""
    work, digest = _built("sklearn.linear_model.Ridge", (), sequence, None, target)
    return _place(root, work, digest, sequence)


def constant_bundle(root: Path, label: str, sequence: int) -> Built:
    """A bundle whose model always answers `label`: which release scored a request is visible
    in its prediction."""
    return make_bundle(
        root,
        "sklearn.dummy.DummyClassifier",
        sequence=sequence,
        strategy="constant",
        constant=label,
    )


def release(root: Path, built: Built | None, target: str = TARGET) -> None:
    """Write deploy/<target>.json as `mlops release` does (atomically)."""
    record = {"target": target, "release": None} if built is None else built.deploy_record(target)
    write_json(root / "deploy" / f"{target}.json", record)


def settings(root: Path, *, personal: tuple[str, ...] = (), **overrides: Any) -> ServeSettings:
    """The real conf/deploy/local.yaml serve settings, with test overrides (`log__redact__method`
    sets serve.log.redact.method), for the churn dataset with `personal` columns marked."""
    conf = yaml.safe_load((ROOT / "conf/deploy/local.yaml").read_text())
    serve = conf["serve"]
    for key, value in overrides.items():
        *sections, name = key.split("__")
        section = serve
        for part in sections:
            section = section[part]
        section[name] = value
    dataset = yaml.safe_load((ROOT / "conf/dataset/churn_example.yaml").read_text())["dataset"]
    for column in personal:
        dataset["columns"][column]["personal"] = True
    params = {
        "dataset": dataset,
        "deploy": {"targets": {TARGET: {"kind": "service", "serve": serve}}},
    }
    return ServeSettings.from_params(params, TARGET, root)


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "deploy").mkdir(parents=True)
    release(root, None)
    return root


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for every test client. httpx builds one per client, loading the CA
    bundle (20 ms of CPU), even for http:// on loopback, and the tests make hundreds of
    clients; with this one, 0.07 ms."""
    return httpx.create_ssl_context()


def http_get(url: str, **kwargs: Any) -> httpx.Response:
    """`httpx.get` with the session's TLS context (`tls`): for polling loops."""
    return httpx.get(url, verify=tls(), **kwargs)


def http_post(url: str, **kwargs: Any) -> httpx.Response:
    """`httpx.post` with the session's TLS context (`tls`)."""
    return httpx.post(url, verify=tls(), **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    url: str
    app: Any
    root: Path

    @property
    def service(self) -> Any:
        return self.app.state.service

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, verify=tls(), **kwargs)


@contextmanager
def running(
    root: Path,
    *,
    token: str | None = TOKEN,
    poll_seconds: float = 0.1,
    personal: tuple[str, ...] = (),
    **overrides: Any,
) -> Iterator[Running]:
    """A real uvicorn server in a thread (graceful shutdown on exit)."""
    import uvicorn

    conf = settings(root, personal=personal, **overrides)
    app = build(conf, root, poll_seconds=poll_seconds, token=token or "")
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", app, root)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def good_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "signup_date": "2022-03-04",
        "plan": "standard",
        "region": "north",
        "monthly_charges": 60.5,
        "tenure_months": 12,
        "support_calls": 1,
        "has_partner": False,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text into {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def metric(samples: Mapping[Any, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))
