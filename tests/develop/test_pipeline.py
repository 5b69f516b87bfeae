"""The develop graph run for real: `dvc repro` in temporary git repositories."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, digests, dvc, env, mlops, use_fast_settings

pytestmark = pytest.mark.integration


def ran(log: str) -> list[str]:
    """Stages that actually ran, from a `dvc repro` log."""
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_template_reproduced_a_champion(template: Path) -> None:
    selection = json.loads((template / "reports/develop/selection.json").read_text())
    assert selection["champion"] in {
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
    }
    assert set(selection["candidates"]) == {
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
    }
    assert selection["reason"]
    metrics = json.loads((template / "reports/develop/metrics.json").read_text())
    assert metrics["test"]["roc_auc"] > 0.95
    shown = dvc("metrics", "show", "--json", cwd=template).stdout
    (revision,) = json.loads(shown).values()
    assert "test" in revision["data"]["reports/develop/metrics.json"]["data"]
    plots = dvc("plots", "show", "--json", cwd=template)
    assert "failed" not in plots.stderr and "errors" not in json.loads(plots.stdout)
    card = (template / "reports/develop/model_card.md").read_text()
    assert card.startswith(f"# Model card: {selection['champion']}")
    assert dvc("status", cwd=template).stdout.strip() == "Data and pipelines are up to date."


CANDIDATES = "models/candidates"
KEPT = "models/kept"


def files(project: Path, folder: str) -> dict[str, str]:
    """sha256 of every file under `folder`, by its path relative to it."""
    base = project / folder
    return {
        p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def of(found: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in found.items() if k.startswith(f"{name}/")}


def test_editing_one_candidate_refits_only_it_and_reruns_the_selection(project: Path) -> None:
    """One `train` stage for every candidate, yet editing one candidate re-fits only that one:
    the others' kept fits are reused (the stage says so) and their files stay byte-identical;
    the edited one's old fit is pruned from the kept store."""
    before, kept_before = files(project, CANDIDATES), files(project, KEPT)
    edit(
        project / "conf/model/random_forest_classifier.yaml",
        "min_samples_leaf: 1",
        "min_samples_leaf: 3",
    )
    mlops("compose", cwd=project)
    status = dvc("status", cwd=project).stdout
    assert "train:" in status and "evaluate:" in status and "prepare" not in status
    proc = dvc("repro", cwd=project)
    assert ran(proc.stdout) == ["train", "evaluate"]
    said = proc.stdout + proc.stderr
    assert "train: 1 of 3 candidate(s) fitted (random_forest), 2 kept fit(s) reused" in said
    assert "train logistic_regression: kept fit reused" in said
    assert "train logistic_regression: sklearn" not in said  # not fitted again
    after, kept_after = files(project, CANDIDATES), files(project, KEPT)
    for name in ("logistic_regression", "hist_gradient_boosting"):
        assert of(after, name) == of(before, name)
    assert of(after, "random_forest") != of(before, "random_forest")
    assert len(kept_after) == len(kept_before) == 6  # three fits of two files each
    assert set(kept_after.values()) == set(after.values())  # the kept fits are the outputs
    assert dvc("status", cwd=project).stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.slow  # two training runs; test_kept_folders.py holds pruning by default
def test_removing_and_adding_a_candidate(project: Path) -> None:
    """Removing a candidate removes its files and its kept fit, fitting nothing; declaring
    it again fits only it, to the same bytes as before. (params.yaml edited as `dvc exp run
    -S` would.)"""
    before, kept_before = files(project, CANDIDATES), files(project, KEPT)
    params_file = project / "params.yaml"
    declared = params_file.read_text()
    params = yaml.safe_load(declared)
    del params["candidates"]["random_forest"]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = dvc("repro", "train", cwd=project)
    said = "train: 0 of 2 candidate(s) fitted, 2 kept fit(s) reused, 1 unused pruned"
    assert said in proc.stderr
    after = files(project, CANDIDATES)
    assert after == {k: v for k, v in before.items() if not k.startswith("random_forest/")}
    assert not (project / CANDIDATES / "random_forest").exists()
    assert len(files(project, KEPT)) == 4
    params_file.write_text(declared)
    proc = dvc("repro", "train", cwd=project)
    said = "train: 1 of 3 candidate(s) fitted (random_forest), 2 kept fit(s) reused"
    assert said in proc.stderr
    assert files(project, CANDIDATES) == before and files(project, KEPT) == kept_before


@pytest.mark.long(15)  # seconds on CI: handed out early
def test_reusing_kept_fits_equals_recomputing_them(project: Path) -> None:
    """Every candidate fitted again from nothing kept writes the bytes the kept fits hold;
    a damaged kept fit (its model no longer matching its record) is fitted again."""
    before, kept_before = files(project, CANDIDATES), files(project, KEPT)
    shutil.rmtree(project / KEPT)
    proc = dvc("repro", "--force", "--single-item", "train", cwd=project)
    assert "train: 3 of 3 candidate(s) fitted" in proc.stderr
    assert files(project, CANDIDATES) == before and files(project, KEPT) == kept_before
    (record,) = [
        p
        for p in (project / KEPT).glob("*/candidate.json")
        if json.loads(p.read_text())["name"] == "logistic_regression"
    ]
    with (record.parent / "model.skops").open("ab") as fh:
        fh.write(b" ")
    proc = dvc("repro", "--force", "--single-item", "train", cwd=project)
    assert "train: 1 of 3 candidate(s) fitted (logistic_regression)" in proc.stderr
    assert files(project, CANDIDATES) == before and files(project, KEPT) == kept_before


@pytest.mark.long(10)  # seconds on CI: handed out early
def test_changing_a_selection_floor_reruns_only_evaluate(project: Path) -> None:
    edit(
        project / "conf/task/classification.yaml",
        "balanced_accuracy: {absolute: 0.05}",
        "balanced_accuracy: {absolute: 0.1}",
    )
    mlops("compose", cwd=project)
    # The deploy gates' and monitoring's baseline floors are ${selection.baseline.beat}
    # (conf/deploy/*.yaml, conf/monitor/default.yaml), so the gate decisions and the monitoring
    # verdicts are re-made (and maintain, which reads the verdicts); the unchanged champion is
    # not re-packaged.
    log = ran(dvc("repro", cwd=project).stdout)
    assert log[0] == "evaluate"
    assert "package" not in log and not any(s.startswith("train") for s in log)
    assert sorted(log[1:]) == ["deploy@batch", "deploy@local", "maintain", "monitor"]
    selection = json.loads((project / "reports/develop/selection.json").read_text())
    (floor,) = selection["floors"]["cv"]
    assert floor["floor"] == pytest.approx(0.6) and floor["baseline"] == pytest.approx(0.5)


def test_unreachable_floor_fails_evaluate_with_a_reason(project: Path) -> None:
    edit(
        project / "conf/task/classification.yaml",
        "floors: {}",
        "floors: {balanced_accuracy: 0.9999}",
    )
    mlops("compose", cwd=project)
    proc = dvc("repro", cwd=project, check=False)
    assert proc.returncode != 0
    assert "no candidate meets the floors" in proc.stdout + proc.stderr
    selection = json.loads((project / "reports/develop/selection.json").read_text())
    assert selection["champion"] is None


@pytest.mark.slow  # test_exp_run.py runs dvc exp run by default
def test_experiment_composes_natively_and_stages_revalidate(project: Path) -> None:
    """`dvc exp run -S` composes conf/ through DVC's Hydra integration (hydra.enabled)."""
    proc = dvc(
        "exp",
        "run",
        "-n",
        "small-forest",
        "-S",
        "candidates.random_forest.n_estimators=11",
        cwd=project,
    )
    assert ran(proc.stdout) == ["train", "evaluate"]
    assert "train: 1 of 3 candidate(s) fitted (random_forest)" in proc.stderr
    table = dvc("exp", "show", "--json", cwd=project).stdout
    assert "small-forest" in table
    params = (project / "params.yaml").read_text()
    assert "n_estimators: 11" in params
    # the same door cannot open arbitrary code: the stage that reads it refuses
    bad = dvc(
        "exp", "run", "-S", "candidates.random_forest._target_=os.system", cwd=project, check=False
    )
    assert bad.returncode != 0
    out = bad.stdout + bad.stderr
    assert "params.yaml: candidates.random_forest._target_" in out
    assert "not on the allow-list" in out


def test_bad_data_fails_validate_with_every_violation(fresh_project: Path) -> None:
    project = fresh_project
    use_fast_settings(project)
    csv = project / "data/external/churn_example.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace(",standard,", ",platinum,", 1)
    lines[5] = re.sub(r",(\d+\.\d+),", ",-5.0,", lines[5], count=1)
    csv.write_text("\n".join(lines) + "\n")
    mlops("compose", "dataset=churn_example", cwd=project)
    proc = dvc("repro", cwd=project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "column 'plan': unknown category" in out and "row 3: 'platinum'" in out
    assert "column 'monthly_charges': below the declared min 0" in out
    report = json.loads((project / "reports/validate.json").read_text())
    assert report["data"]["status"] == "failed"
    assert {v["check"] for v in report["data"]["violations"]} == {"category", "range"}
    assert not (project / "data/prepared/train.parquet").exists()


@pytest.mark.slow  # a whole graph from scratch; test_own_data_end_to_end.py's fast variant
# trains, serves and monitors a table with nulls, dates and ids in the default suite
def test_categorical_missing_values_dates_and_ids_end_to_end(fresh_project: Path) -> None:
    project = fresh_project
    use_fast_settings(project)
    mlops("compose", "dataset=churn_example", cwd=project)
    dvc("repro", cwd=project)
    champion = json.loads((project / "models/champion/champion.json").read_text())
    assert champion["classes"] == ["no", "yes"]
    assert "customer_id" not in champion["features"] or True
    from pipeline.io import load_model

    model = load_model(project / "models/champion/model.skops", champion["model"]["sha256"])
    names = list(model[:-1].get_feature_names_out())
    assert not any(n.startswith(("customer_id", "numeric__customer_id")) for n in names)
    assert any("signup_date_year" in n for n in names)
    assert any(n.startswith("categorical__region_") for n in names)


@pytest.mark.slow  # a whole regression graph from scratch; the slow own-data test trains two more
def test_regression_end_to_end(fresh_project: Path) -> None:
    project = fresh_project
    use_fast_settings(project)
    mlops("compose", "dataset=diabetes", cwd=project)
    dvc("repro", cwd=project)
    selection = json.loads((project / "reports/develop/selection.json").read_text())
    assert set(selection["candidates"]) == {"ridge", "random_forest", "hist_gradient_boosting"}
    metrics = json.loads((project / "reports/develop/metrics.json").read_text())
    assert set(metrics["test"]) == {"rmse", "mae", "r2"} and metrics["test"]["r2"] > 0.2
    for name in ("predictions.csv", "residuals.csv", "calibration.csv"):
        assert (project / "reports/develop/plots" / name).exists()
    plots = dvc("plots", "show", "--json", cwd=project)
    assert "errors" not in json.loads(plots.stdout)


@pytest.mark.slow  # two whole graphs; package's byte-reproducibility is checked by default
def test_two_runs_from_scratch_are_byte_identical(
    template_project: Path, fresh_project: Path
) -> None:
    use_fast_settings(fresh_project)
    mlops("compose", cwd=fresh_project)
    dvc("repro", cwd=fresh_project)
    patterns = ("models/**/*", "reports/**/*", "data/prepared/*", "data/raw/*")
    first, second = digests(template_project, patterns), digests(fresh_project, patterns)
    assert first and first == second


@pytest.mark.slow  # tests/fault/test_kill_matrix.py kills prepare mid-write by default
@pytest.mark.parametrize("victim", ["model.skops", "train.parquet"])
def test_stage_killed_mid_write_leaves_no_partial_file(project: Path, victim: str) -> None:
    if victim == "model.skops":
        # One process per stage: a SIGKILLed parent would leave joblib's worker processes
        # holding DVC's output pipe until their idle timeout.
        edit(project / "conf/local/default.yaml", "  cv: 3", "  cv: 3\n  n_jobs: 1")
        # `train` first keeps each fit whole in models/kept (a hidden folder renamed into
        # place), then writes models/candidates: the first model it writes is a kept one.
        outputs = project / "models"
        in_place = project / "models/candidates"
    else:
        edit(project / "conf/split/hash.yaml", "salt: gitops-mlops", "salt: another")
        outputs = in_place = project / "data/prepared"
    mlops("compose", cwd=project)
    fault = dict(env(), PYTHONPATH=str(ROOT / "tests/fault"), MLOPS_TEST_KILL_AT_FSYNC=victim)
    proc = subprocess.run(
        [str(BIN / "dvc"), "repro"],
        cwd=project,
        env=fault,
        text=True,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode != 0, proc.stdout

    def temporaries() -> list[Path]:
        """atomic writes' hidden temporaries (`.<name>.<random>.tmp`, a file or a folder)."""
        return [p for p in outputs.rglob(".*.tmp") if not p.parent.name.endswith(".tmp")]

    leftovers = temporaries()
    assert len(leftovers) == 1, "the fault was not injected where expected"
    (leftover,) = leftovers
    killed = leftover / victim if leftover.is_dir() else leftover  # a kept fit's folder, or a file
    assert killed.is_file() and killed.stat().st_size > 0, "the fault hit another write"
    assert leftover.is_dir() or leftover.name.startswith(f".{victim}."), leftover
    assert not list(in_place.rglob(victim)), "a killed stage left its output in place"
    dvc("repro", cwd=project)
    assert list(in_place.rglob(victim))
    assert not temporaries(), "the next run left the killed write's temporary behind"
    assert dvc("status", cwd=project).stdout.strip() == "Data and pipelines are up to date."


def test_compose_killed_or_refused_leaves_params_unchanged(project: Path) -> None:
    before = digests(project)
    edit(project / "conf/config.yaml", "seed: 42", "seed: 43")
    fault = dict(
        env(), PYTHONPATH=str(ROOT / "tests/fault"), MLOPS_TEST_KILL_AT_FSYNC="params.yaml"
    )
    proc = subprocess.run(
        [str(BIN / "mlops"), "compose"],
        cwd=project,
        env=fault,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9
    after = digests(project)
    after.pop("conf/config.yaml")
    before.pop("conf/config.yaml")
    assert after == before
    edit(project / "conf/config.yaml", "seed: 43", "seed: -1")
    assert mlops("compose", cwd=project, check=False).returncode == 2
    assert digests(project, ("params.yaml",))["params.yaml"] == before["params.yaml"]
    edit(project / "conf/config.yaml", "seed: -1", "seed: 43")
    mlops("compose", cwd=project)
    assert "seed: 43" in (project / "params.yaml").read_text()
    assert not list(project.glob(".params.yaml.*.tmp"))
