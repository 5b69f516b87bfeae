"""Atomic writes and model files: reproducible bytes, digests enforced, untrusted types refused."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.errors import ArtifactError
from pipeline.io import (
    atomic_open,
    dumps_indented,
    load_model,
    loads_model,
    model_bytes,
    save_model,
    sha256_bytes,
    sha256_file,
    verify_manifest,
    write_json,
)


def fitted(seed: int = 0) -> Pipeline:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    return Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(X, y)


def test_model_bytes_are_reproducible_and_load_back(tmp_path: Path) -> None:
    first, second = model_bytes(fitted()), model_bytes(fitted())
    assert first == second
    digest = save_model(fitted(), tmp_path / "m.skops")
    assert digest == sha256_bytes(first)
    model = load_model(tmp_path / "m.skops", digest)
    X = np.eye(3)
    assert (model.predict_proba(X) == fitted().predict_proba(X)).all()
    names = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert {i.date_time for i in names} == {(1980, 1, 1, 0, 0, 0)}


def _rewritten_skops_dumps(model: object) -> bytes:
    """model_bytes as it was written first, through skops's public `dumps` and a parse of its
    indented schema: the bytes every recorded model (dvc.lock) was made of."""
    import skops.io as sio

    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    schema = json.loads(raw.read("schema.json"))
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "__loader__" in node:
                if "__id__" in node:
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids))
                if node["__loader__"] == "NdArrayNode" and isinstance(node.get("file"), str):
                    old = node["file"]
                    node["file"] = names.setdefault(old, f"{len(names)}{Path(old).suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        entries = [("schema.json", json.dumps(schema, indent=2).encode())]
        entries += sorted((new, raw.read(old)) for old, new in names.items())
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return out.getvalue()


def test_model_bytes_are_those_of_skops_public_dumps_rewritten() -> None:
    """The faster path (skops's state without its indented schema, `dumps_indented`) writes
    the very bytes of the first one, so recorded model digests (dvc.lock) stay valid."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for model in (
        fitted(),
        RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, y),
    ):
        assert model_bytes(model) == _rewritten_skops_dumps(model)


def test_dumps_indented_is_json_dumps_indent_2() -> None:
    values = {
        "a": [1, -2, 2.5, -0.0, 1e-05, 1e20, 1.5e300, float("nan"), float("inf"), float("-inf")],
        "b": [True, False, None, "", 'é\n"x\u2028', [], {}, {"c": [[]]}],
        "ü": {},
    }
    assert dumps_indented(values) == json.dumps(values, indent=2)
    for scalar in (1, 0.1, "x", None, [], {}):
        assert dumps_indented(scalar) == json.dumps(scalar, indent=2)
    with pytest.raises(TypeError, match="key 1 is not a string"):
        dumps_indented({1: 2})


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    digest = save_model(fitted(), path)
    save_model(fitted(seed=1), path)
    with pytest.raises(ArtifactError, match="does not match the recorded"):
        load_model(path, digest)


def test_untrusted_type_is_refused() -> None:
    data = model_bytes(fitted())
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    schema["__module__"], schema["__class__"] = "os", "system"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            payload = (
                json.dumps(schema).encode() if info.filename == "schema.json" else src.read(info)
            )
            dst.writestr(info, payload)
    with pytest.raises(
        ArtifactError, match=r"refused: the model file holds os\.system \(ObjectNode\)"
    ):
        loads_model(out.getvalue())


def test_garbage_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not a readable skops model"):
        loads_model(b"not a zip at all")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write('{"v": 2, "half')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_json_is_canonical(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, None]})
    assert (
        tmp_path / "a.json"
    ).read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")})


def test_a_manifest_proves_every_file(tmp_path: Path) -> None:
    model = model_bytes(fitted())
    (tmp_path / "model.skops").write_bytes(model)
    write_json(tmp_path / "bundle.json", {"files": {"model.skops": sha256_bytes(model)}})
    digest = sha256_file(tmp_path / "bundle.json")
    assert verify_manifest(tmp_path, "bundle.json", digest, hint="")[0] == digest
    with pytest.raises(ArtifactError, match="does not match the release's"):
        verify_manifest(tmp_path, "bundle.json", "0" * 64, hint="")
    (tmp_path / "model.skops").write_bytes(b"other")
    with pytest.raises(ArtifactError, match=r"model\.skops: missing or changed"):
        verify_manifest(tmp_path, "bundle.json", digest, hint="")
    with pytest.raises(ArtifactError, match=r"no other\.json; not a bundle"):
        verify_manifest(tmp_path, "other.json", hint="")


def test_a_manifest_with_a_model_file_proves_what_it_holds(tmp_path: Path) -> None:
    """The digests of a self-consistent manifest say nothing about what a model file holds:
    verifying a bundle audits its model files too, without loading them."""
    (tmp_path / "model.skops").write_bytes(b"not a model")
    write_json(tmp_path / "bundle.json", {"files": {"model.skops": sha256_bytes(b"not a model")}})
    with pytest.raises(ArtifactError, match=r"model\.skops: not a readable skops model file"):
        verify_manifest(tmp_path, "bundle.json", hint="")
