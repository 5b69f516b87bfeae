"""Crafted model files, through every path that loads one: `mlops predict --bundle`, the
service's hot swap, the gate stage, monitoring and `mlops verify` (issue 10, finding 1).

The crafted file is a real fitted model's file with one node added: a skops `LossNode` whose
"class" is scikit-learn's `assert_run_python_script_without_output`, a function that runs the
Python source it is given. skops calls a LossNode's class with its arguments while loading, so
a loader that trusted the `sklearn.` prefix ran the script. Here the script only writes a
marker file; every test asserts the file was refused with a clear error AND that the marker
does not exist (nothing ran). `test_the_payload_is_live` proves the marker does appear when
skops is told to trust the file: the other tests can fail.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from pipeline.io import dumps_json, model_bytes, sha256_bytes, sha256_file
from tests.conftest import mlops
from tests.deploy.conftest import commit, gate
from tests.deploy.serving import (
    Built,
    good_record,
    make_bundle,
    release,
    running,
    wait_for,
)
from tests.deploy.serving import project as service_project

PAYLOAD = "sklearn.utils._testing.assert_run_python_script_without_output"
REFUSED = "refused: the model file holds " + re.escape(PAYLOAD) + r" \(LossNode\)"


def hostile_model(model: bytes, marker: Path) -> bytes:
    """`model` (a skops file) with a LossNode that would write `marker` replacing one of its
    root object's plain attributes (deep in the tree, not at its root)."""
    source = zipfile.ZipFile(io.BytesIO(model))
    schema = json.loads(source.read("schema.json"))
    code = f"open({str(marker)!r}, 'w').write('ran')"
    payload = {
        "__class__": PAYLOAD.rsplit(".", 1)[1],
        "__module__": PAYLOAD.rsplit(".", 1)[0],
        "__loader__": "LossNode",
        "__reduce__": {
            "args": {
                "__class__": "tuple",
                "__module__": "builtins",
                "__loader__": "TupleNode",
                "content": [
                    {
                        "__class__": "str",
                        "__module__": "builtins",
                        "__loader__": "JsonNode",
                        "content": json.dumps(code),
                        "is_json": True,
                    }
                ],
            }
        },
        "content": {
            "__class__": "dict",
            "__module__": "builtins",
            "__loader__": "DictNode",
            "content": {},
            "key_types": {
                "__class__": "list",
                "__module__": "builtins",
                "__loader__": "ListNode",
                "content": [],
            },
        },
    }
    attributes = schema["content"]["content"]
    plain = next(k for k, v in attributes.items() if v.get("__loader__") == "JsonNode")
    attributes[plain] = payload
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in source.infolist():
            data = source.read(info)
            zf.writestr(
                info, json.dumps(schema).encode() if info.filename == "schema.json" else data
            )
    return out.getvalue()


def plant(bundle: Path, marker: Path) -> str:
    """Put a hostile model file into `bundle` and rewrite its manifest to match, as an attacker
    who controls the directory can: the bundle stays self-consistent. Returns its digest."""
    model = bundle / "model.skops"
    model.write_bytes(hostile_model(model.read_bytes(), marker))
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["files"]["model.skops"] = sha256_file(model)
    text = dumps_json(meta)
    (bundle / "bundle.json").write_text(text)
    return sha256_bytes(text.encode())


def release_hostile(root: Path, source: Path, marker: Path, sequence: int = 1) -> Built:
    """A hostile copy of the bundle `source`, placed in bundles/<id> with a (fake) DVC pointer
    and released to `local` in deploy/local.json, as a reviewer who only sees a digest would
    approve it. The record describes the model as `source`'s gate report would (when there is
    one), so the gate finds the incumbent comparable and must load it."""
    staging = root / ".staging"
    shutil.copytree(source, staging)
    digest = plant(staging, marker)
    dest = root / "bundles" / digest[:16]
    dest.parent.mkdir(exist_ok=True)
    staging.rename(dest)
    (root / f"bundles/{digest[:16]}.dvc").write_text("outs: []\n")
    built = Built(dest, digest, f"r{sequence:04d}-{digest[:16]}")
    record = built.deploy_record()
    gated = root / "reports/deploy/local.json"
    if gated.is_file():
        record["model"] = json.loads(gated.read_text())["candidate"]["model"]
    (root / "deploy/local.json").write_text(dumps_json(record))
    return built


def test_the_payload_is_live(tmp_path: Path) -> None:
    """skops, told to trust what the file names, runs the script: the crafted file is a real
    attack, so a path that loaded it would leave the marker."""
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    marker = tmp_path / "ran"
    data = hostile_model(model_bytes(DummyClassifier().fit([[0.0], [1.0]], ["a", "b"])), marker)
    assert PAYLOAD in sio.get_untrusted_types(data=data)
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert marker.read_text() == "ran"


@pytest.mark.integration
def test_predict_with_a_hostile_bundle_is_refused(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = project / "evil"
    shutil.copytree(project / "models/bundle", evil)
    plant(evil, marker)
    out = tmp_path / "out.csv"
    args = ("predict", "--bundle", "evil", "--input", "data/prepared/test.parquet")
    result = mlops(*args, "--output", str(out), cwd=project, check=False)
    assert result.returncode == 2, result.stderr
    assert "evil/model.skops" in result.stderr
    assert "nothing was loaded" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not out.exists()


@pytest.mark.integration
def test_predict_bundle_must_digest_every_file_it_reads(project: Path, tmp_path: Path) -> None:
    """--bundle need not be released, but is only used when its manifest proves every file it
    reads: a model file the manifest does not list is never loaded unverified."""
    bundle = project / "unlisted"
    shutil.copytree(project / "models/bundle", bundle)
    meta = json.loads((bundle / "bundle.json").read_text())
    del meta["files"]["model.skops"]
    (bundle / "bundle.json").write_text(dumps_json(meta))
    out = tmp_path / "out.csv"
    args = ("predict", "--bundle", "unlisted", "--input", "data/prepared/test.parquet")
    result = mlops(*args, "--output", str(out), cwd=project, check=False)
    assert result.returncode == 2, result.stderr
    assert "lists no sha256 for model.skops" in result.stderr and not out.exists()
    # a changed file of a self-consistent bundle is refused too
    shutil.copy(project / "models/bundle/bundle.json", bundle / "bundle.json")
    (bundle / "predictions.parquet").write_bytes(b"changed")
    result = mlops(*args, "--output", str(out), cwd=project, check=False)
    assert result.returncode == 2 and "sha256 mismatch" in result.stderr
    assert not out.exists()


def test_the_service_refuses_to_swap_to_a_hostile_release(tmp_path: Path) -> None:
    root = service_project(tmp_path)
    good = make_bundle(root)
    release(root, good)
    marker = tmp_path / "ran"
    with running(root, poll_seconds=0.05) as srv, srv.client() as client:
        hostile = release_hostile(root, good.path, marker, sequence=2)
        health = wait_for(lambda: (h := client.get("/health").json())["error"] and h)
        assert hostile.release in health["error"]
        assert "nothing was loaded" in health["error"] and PAYLOAD in health["error"]
        assert health["release"] == good.release and not health["in_sync"]
        assert client.post("/predict", json=good_record()).json()["release"] == good.release
    assert not marker.exists()


@pytest.mark.integration
def test_the_gate_refuses_a_hostile_champion_and_incumbent(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    # an incumbent whose released bundle holds the payload: never rescored
    hostile = release_hostile(project, project / "models/bundle", marker)
    rep = gate(project)
    assert rep["decision"] == "blocked"
    assert any(hostile.release in r and "nothing was loaded" in r for r in rep["reasons"])
    # a champion's bundle holding it: never judged
    plant(project / "models/bundle", marker)
    rep = gate(project)
    assert rep["decision"] == "blocked" and rep["candidate"] is None
    assert "nothing was loaded" in rep["reasons"][0] and PAYLOAD in rep["reasons"][0]
    assert not marker.exists()


@pytest.mark.long(10)  # seconds on CI: handed out early
@pytest.mark.integration
def test_the_gate_verifies_the_incumbent_when_it_is_the_champion(project: Path) -> None:
    """Champion and incumbent share a bundle id: the released copy is still verified against
    the record's digest (issue 10: the gate said "already released" for a tampered copy)."""
    mlops("release", "--target", "local", cwd=project)
    commit(project, "release")
    assert gate(project)["decision"] == "already_released"
    bundle_id = json.loads((project / "deploy/local.json").read_text())["bundle"]["id"]
    (project / f"bundles/{bundle_id}/predictions.parquet").write_bytes(b"changed")
    rep = gate(project)
    assert rep["decision"] == "blocked"
    assert "cannot be verified" in rep["reasons"][0] and "sha256 mismatch" in rep["reasons"][0]


def test_monitoring_refuses_a_hostile_release(tmp_path: Path) -> None:
    from pipeline.errors import ArtifactError
    from pipeline.monitor.monitored_bundle import monitored_bundle
    from tests.monitor.fakes import write_bundle

    marker = tmp_path / "ran"
    write_bundle(tmp_path / "source", ["no", "yes"])
    (tmp_path / "deploy").mkdir()
    release_hostile(tmp_path, tmp_path / "source", marker)
    with pytest.raises(ArtifactError, match=REFUSED):
        monitored_bundle(tmp_path, "local")
    # the champion's bundle, monitored before any release, is checked the same way
    release(tmp_path, None)
    shutil.copytree(tmp_path / "source", tmp_path / "models/bundle")
    plant(tmp_path / "models/bundle", marker)
    with pytest.raises(ArtifactError, match=REFUSED):
        monitored_bundle(tmp_path, "local")
    assert not marker.exists()


@pytest.mark.integration
def test_verify_refuses_a_hostile_release(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = release_hostile(project, project / "models/bundle", marker)
    result = mlops("verify", "--target", "local", cwd=project, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert hostile.release in output and "nothing was loaded" in output, output
    assert not marker.exists()
