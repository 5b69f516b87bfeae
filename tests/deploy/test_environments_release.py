"""`mlops release` of a kubernetes and a systemd target, end to end on the reproduced template:
the gates run for the new targets (`dvc repro`), the release renders the units at once and says
that the manifests wait for the image, `mlops image record` renders them, and `mlops status` /
`mlops render --check` agree. Slow (a real `dvc repro` of two gate stages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import dvc, mlops
from tests.deploy.test_environments import DIGEST1, TARGETS

pytestmark = pytest.mark.slow


def test_release_renders_the_environments_of_what_it_releases(project: Path) -> None:
    conf = project / "conf/config.yaml"
    anchor = "  - deploy@deploy.targets.batch: batch"
    text = conf.read_text(encoding="utf-8")
    conf.write_text(text.replace(anchor, anchor + "\n" + "\n".join(TARGETS) + "\n  #", 1))
    for target in ("k8s", "onprem"):
        (project / f"deploy/{target}.json").write_text(
            json.dumps({"target": target, "release": None}) + "\n"
        )
    mlops("compose", cwd=project)
    dvc("repro", cwd=project)
    out = mlops("release", "--target", "k8s", "--target", "onprem", cwd=project).stdout
    release = json.loads((project / "deploy/k8s.json").read_text())["release"]
    assert f"k8s: released {release}" in out
    assert "k8s: no image recorded yet (deploy/images/k8s.json): nothing rendered" in out
    assert "onprem: released" in out and "rendered deploy/systemd/onprem/ (2 file(s)" in out
    assert not (project / "deploy/k8s/k8s").exists()
    mlops("image", "record", "--target", "k8s", "--digest", DIGEST1, cwd=project)
    deployment = (project / "deploy/k8s/k8s/deployment.yaml").read_text()
    assert f"gitops-mlops/release: {release}" in deployment
    assert mlops("render", "--check", cwd=project).returncode == 0
    status = mlops("status", cwd=project).stdout
    assert f"rendered: {release} (deployment) — matches the declared release" in status
    assert "live: not checked (give --kubeconfig to read the cluster)" in status
