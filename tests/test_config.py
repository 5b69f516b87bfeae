"""Compose, check and validation of the real conf/ tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.errors import ConfigError, StaleParamsError
from pipeline.factory import build_pipeline, build_search
from pipeline.params import build
from pipeline.validation import validate_params
from tests.conftest import ROOT, copy_project, digests, mlops, mlops_process

# Options that need values only a particular dataset can supply (their `???` keys).
EXTRA = {
    ("task", "regression"): ["dataset=diabetes"],
    ("split", "group"): ["dataset=churn_example", "split.group_column=plan"],
    ("split", "time"): [
        "dataset=churn_example",
        "split.time_column=signup_date",
        "split.test_from=2022-06-01",
        "split.pool_from=2023-01-01",
    ],
}


def _options() -> list[tuple[str, str]]:
    out = []
    for group in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()):
        if group.name in ("local", "model", "deploy"):  # reached through task files / targets
            continue
        for option in sorted(group.glob("*.yaml")):
            out.append((group.name, option.stem))
    return out


@pytest.mark.parametrize(("group", "option"), _options())
def test_every_option_composes_validates_and_instantiates(group: str, option: str) -> None:
    prefix = "+" if group == "experiment" else ""
    overrides = [f"{prefix}{group}={option}", *EXTRA.get((group, option), [])]
    composed = config.compose(ROOT, overrides)
    issues = validate_params(composed.data, composed.locate, root=ROOT, missing=composed.missing)
    assert issues == []
    params = build(composed.data, ROOT)  # every section of the typed tree
    dataset, prep, train = params.dataset, params.preprocessing, params.train
    for cand in params.candidates.values():
        pipe = build_pipeline(cand, dataset, prep)
        assert pipe.named_steps["model"].__class__.__name__ == cand.target.rsplit(".", 1)[1]
        build_search(
            pipe,
            cand.search,
            cv=train.cv,
            scoring={"m": "r2"},
            rank_by="m",
            n_jobs=1,
            seed=0,
            verbose=0,
        )


def test_every_model_file_is_used_by_a_task() -> None:
    used = set()
    for task in (ROOT / "conf/task").glob("*.yaml"):
        for entry in yaml.safe_load(task.read_text())["defaults"]:
            used.add(next(iter(entry.values())))
    assert used == {p.stem for p in (ROOT / "conf/model").glob("*.yaml")}


def test_committed_params_are_current() -> None:
    config.check(ROOT)  # raises StaleParamsError with a diff otherwise


def test_params_equal_dvc_hydra_composition(tmp_path: Path) -> None:
    """Byte-identical to what `dvc exp run -S` writes (dvc.utils.hydra.compose_and_dump)."""
    from dvc.utils.hydra import compose_and_dump

    for overrides in ([], ["dataset=diabetes", "candidates.ridge.alpha=3.5"], ["+experiment=fast"]):
        out = tmp_path / "params.yaml"
        compose_and_dump(out, str(ROOT / "conf"), None, "config", str(tmp_path), overrides)
        assert config.compose(ROOT, overrides).text == out.read_text(encoding="utf-8")


def test_the_committed_lock_records_exactly_the_stages_of_the_graph(tmp_path: Path) -> None:
    """DVC never drops the dvc.lock entry of a stage that left dvc.yaml (treeverse/dvc#5293):
    it is dead weight that `dvc repro` parses and rewrites after every stage it runs (four
    stale entries made the lock 3,108 lines instead of 2,279 and `dvc repro -f` 1.15x
    slower). And a stage without an entry was added without reproducing and committing the
    lock. The stage names come from DVC itself, foreach expanded over params.yaml."""
    from dvc.repo import Repo

    Repo.init(tmp_path, no_scm=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    with Repo(str(tmp_path)) as repo:
        stages = {stage.name for stage in repo.index.stages}
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert "deploy@local" in stages and "train" in stages  # the expansion is DVC's
    assert locked <= stages, (
        f"dvc.lock holds entries of stages dvc.yaml no longer has: {sorted(locked - stages)}; "
        "delete them from dvc.lock (`dvc remove` cannot: the stages are gone) and commit it"
    )
    assert stages <= locked, (
        f"dvc.lock has no entry for {sorted(stages - locked)}: run `dvc repro` and commit dvc.lock"
    )


def test_check_cache_never_hides_a_change(tmp_path: Path) -> None:
    """A remembered successful check is keyed on every input: editing params.yaml by hand, or
    any conf/ file, makes the next check compose again and fail."""
    project = copy_project(tmp_path / "p")
    (project / ".dvc/tmp").mkdir(exist_ok=True)
    config.check(project)
    assert (project / config.CHECK_CACHE).is_file()
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("seed: 42", "seed: 41"))
    with pytest.raises(StaleParamsError, match="seed: 41"):
        config.check(project)
    params.write_text(params.read_text().replace("seed: 41", "seed: 42"))
    config.check(project)
    split = project / "conf/split/hash.yaml"
    split.write_text(split.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    with pytest.raises(StaleParamsError, match=r"test_size: 0\.25"):
        config.check(project)


def test_check_fails_with_diff_after_conf_edit(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    model = project / "conf/model/random_forest_classifier.yaml"
    model.write_text(model.read_text().replace("n_estimators: 200", "n_estimators: 77"))
    proc = mlops("compose", "--check", cwd=project, check=False)
    assert proc.returncode == 1
    assert "-    n_estimators: 200" in proc.stderr and "+    n_estimators: 77" in proc.stderr
    with pytest.raises(StaleParamsError, match="out of step"):
        config.check(project)
    mlops("compose", cwd=project)
    assert mlops("compose", "--check", cwd=project).returncode == 0


# ---------------------------------------------------------------------------- bad-config corpus
# (description, how to break it, file the message must name, key the message must name)
EDITS = {
    "conf/model/random_forest_classifier.yaml": "model",
    "conf/config.yaml": "config",
    "conf/task/classification.yaml": "task",
    "conf/dataset/breast_cancer.yaml": "dataset",
    "conf/split/hash.yaml": "split",
    "conf/preprocessing/default.yaml": "prep",
}
BAD_CONFIGS = [
    (
        "a numeric classification target (its labels would read 0.0, 1.0)",
        (
            "conf/dataset/breast_cancer.yaml",
            "target: {type: category, categories: [benign, malignant]}",
            "target: {type: int}",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.columns.target.type",
    ),
    (
        "negative n_estimators",
        ("conf/model/random_forest_classifier.yaml", "n_estimators: 200", "n_estimators: -3"),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest.n_estimators",
    ),
    (
        "wrong type for a hyperparameter",
        (
            "conf/model/random_forest_classifier.yaml",
            "min_samples_leaf: 1",
            "min_samples_leaf: lots",
        ),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest.min_samples_leaf",
    ),
    (
        "unknown hyperparameter",
        ("conf/model/random_forest_classifier.yaml", "max_depth: null", "max_depht: null"),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest.max_depht",
    ),
    (
        "os.system as _target_",
        (
            "conf/model/random_forest_classifier.yaml",
            "sklearn.ensemble.RandomForestClassifier",
            "os.system",
        ),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest._target_",
    ),
    (
        "builtins.eval as _target_",
        (
            "conf/model/logistic_regression.yaml",
            "sklearn.linear_model.LogisticRegression",
            "builtins.eval",
        ),
        "conf/model/logistic_regression.yaml",
        "candidates.logistic_regression._target_",
    ),
    (
        "subprocess.Popen as _target_",
        (
            "conf/model/hist_gradient_boosting_classifier.yaml",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "subprocess.Popen",
        ),
        "conf/model/hist_gradient_boosting_classifier.yaml",
        "candidates.hist_gradient_boosting._target_",
    ),
    (
        "regressor for a classification task",
        (
            "conf/model/random_forest_classifier.yaml",
            "RandomForestClassifier",
            "RandomForestRegressor",
        ),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest._target_",
    ),
    (
        "bad search method",
        ("conf/model/random_forest_classifier.yaml", "method: random", "method: bayesian"),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest._search_.method",
    ),
    (
        "invalid value in a search space",
        (
            "conf/model/random_forest_classifier.yaml",
            "min_samples_leaf: [1, 2, 4]",
            "min_samples_leaf: [1, 0, 4]",
        ),
        "conf/model/random_forest_classifier.yaml",
        "candidates.random_forest._search_.space.min_samples_leaf",
    ),
    (
        "unknown top-level key",
        ("conf/config.yaml", "project:\n", "projekt: {}\nproject:\n"),
        "conf/config.yaml",
        "projekt",
    ),
    ("cv folds below 2", ("conf/config.yaml", "cv: 5", "cv: 1"), "conf/config.yaml", "train.cv"),
    (
        "negative seed",
        ("conf/config.yaml", "seed: 42", "seed: -1"),
        "conf/config.yaml",
        "project.seed",
    ),
    (
        "seed of the wrong type",
        ("conf/config.yaml", "seed: 42", "seed: forty-two"),
        "conf/config.yaml",
        "project.seed",
    ),
    (
        "metric of the other task",
        ("conf/task/classification.yaml", "metric: roc_auc", "metric: rmse"),
        "conf/task/classification.yaml",
        "selection.metric",
    ),
    (
        "direction contradicting the metric",
        ("conf/task/classification.yaml", "direction: maximize", "direction: minimize"),
        "conf/task/classification.yaml",
        "selection.direction",
    ),
    (
        "bad enum for scored_on",
        ("conf/task/classification.yaml", "scored_on: cv", "scored_on: holdout"),
        "conf/task/classification.yaml",
        "selection.scored_on",
    ),
    (
        "floor on an unknown metric",
        ("conf/task/classification.yaml", "floors: {}", "floors: {precision_at_k: 0.85}"),
        "conf/task/classification.yaml",
        "selection.floors.precision_at_k",
    ),
    (
        "baseline margin on a metric of the other task",
        (
            "conf/task/classification.yaml",
            "balanced_accuracy: {absolute: 0.05}",
            "rmse: {absolute: 0.05}",
        ),
        "conf/task/classification.yaml",
        "selection.baseline.beat.rmse",
    ),
    (
        "baseline strategy of the other task",
        ("conf/task/classification.yaml", "strategy: prior", "strategy: mean"),
        "conf/task/classification.yaml",
        "selection.baseline.strategy",
    ),
    (
        "negative tolerance",
        ("conf/task/classification.yaml", "tolerance: {relative: 0.002}", "tolerance: -0.1"),
        "conf/task/classification.yaml",
        "selection.tolerance",
    ),
    (
        "relative tolerance above one",
        (
            "conf/task/classification.yaml",
            "tolerance: {relative: 0.002}",
            "tolerance: {relative: 2}",
        ),
        "conf/task/classification.yaml",
        "selection.tolerance.relative: expected a number <= 1",
    ),
    (
        "tolerance with both kinds (a merge of two files)",
        (
            "conf/task/classification.yaml",
            "tolerance: {relative: 0.002}",
            "tolerance: {relative: 0.002, absolute: 0.01}",
        ),
        "conf/task/classification.yaml",
        "selection.tolerance: set exactly one of absolute / relative",
    ),
    (
        "gate margin in an unknown form",
        ("conf/deploy/local.yaml", "margin: {relative: 0.01}", "margin: 1%"),
        "conf/deploy/local.yaml",
        "deploy.targets.local.gates.compare.margin: expected a number (absolute",
    ),
    (
        "target not declared",
        ("conf/dataset/breast_cancer.yaml", "target: target", "target: diagnosis"),
        "conf/dataset/breast_cancer.yaml",
        "dataset.target",
    ),
    (
        "bad column type",
        (
            "conf/dataset/breast_cancer.yaml",
            "mean_radius: {type: float",
            "mean_radius: {type: decimal",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.columns.mean_radius.type",
    ),
    (
        "min above max",
        (
            "conf/dataset/breast_cancer.yaml",
            "mean_radius: {type: float, min: 0,",
            "mean_radius: {type: float, min: 999,",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.columns.mean_radius.min",
    ),
    (
        "dataset file that does not exist",
        (
            "conf/dataset/breast_cancer.yaml",
            "    kind: sklearn\n    loader: breast_cancer",
            "    kind: file\n    path: data/external/nope.csv\n    format: csv",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.source.path",
    ),
    (
        "file outside data/external",
        (
            "conf/dataset/breast_cancer.yaml",
            "    kind: sklearn\n    loader: breast_cancer",
            "    kind: file\n    path: /etc/passwd\n    format: csv",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.source",
    ),
    (
        "bad missing_target switch",
        ("conf/dataset/breast_cancer.yaml", "missing_target: drop", "missing_target: impute"),
        "conf/dataset/breast_cancer.yaml",
        "dataset.missing_target",
    ),
    (
        "split sizes leave nothing to train",
        ("conf/split/hash.yaml", "pool_size: 0.2", "pool_size: 0.9"),
        "conf/split/hash.yaml",
        "split.test_size",
    ),
    (
        "negative test size",
        ("conf/split/hash.yaml", "test_size: 0.2", "test_size: -0.2"),
        "conf/split/hash.yaml",
        "split.test_size",
    ),
    (
        "missing ??? value",
        ("conf/config.yaml", "  - split: hash", "  - split: group"),
        "conf/split/group.yaml",
        "split.group_column",
    ),
    (
        "bad scaler",
        ("conf/preprocessing/default.yaml", "scale: standard", "scale: zscore"),
        "conf/preprocessing/default.yaml",
        "preprocessing.numeric.scale",
    ),
    (
        "unknown preprocessing key",
        ("conf/preprocessing/default.yaml", "add_indicator: false", "add_indicators: false"),
        "conf/preprocessing/default.yaml",
        "preprocessing.numeric.add_indicators",
    ),
    (
        "personal is not a boolean",
        (
            "conf/dataset/breast_cancer.yaml",
            "mean_radius: {type: float,",
            "mean_radius: {personal: sometimes, type: float,",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.columns.mean_radius.personal",
    ),
    (
        "the target marked personal",
        (
            "conf/dataset/breast_cancer.yaml",
            "target: {type: category,",
            "target: {personal: true, type: category,",
        ),
        "conf/dataset/breast_cancer.yaml",
        "dataset.columns.target.personal",
    ),
    (
        "unknown redaction method",
        ("conf/deploy/local.yaml", "method: drop ", "method: encrypt "),
        "conf/deploy/local.yaml",
        "deploy.targets.local.serve.log.redact.method",
    ),
    (
        "log retention of zero days",
        ("conf/deploy/local.yaml", "max_age_days: 30 ", "max_age_days: 0 "),
        "conf/deploy/local.yaml",
        "deploy.targets.local.serve.log.max_age_days",
    ),
    (
        "docs is not a boolean",
        ("conf/deploy/local.yaml", "docs: false ", "docs: maybe "),
        "conf/deploy/local.yaml",
        "deploy.targets.local.serve.docs",
    ),
]


@pytest.fixture(scope="module")
def clean_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("bad-config") / "p")


@pytest.mark.parametrize(
    ("edit", "source", "key"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_is_refused_and_changes_nothing(
    clean_project: Path, tmp_path: Path, edit: tuple[str, str, str], source: str, key: str
) -> None:
    project = tmp_path / "p"
    shutil.copytree(clean_project, project, symlinks=True)
    file, old, new = edit
    path = project / file
    text = path.read_text()
    assert old in text, f"corpus entry out of date: {old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))
    before = digests(project)
    with pytest.raises(ConfigError) as info:
        config.write(project)
    message = info.value.render()
    assert source in message and key in message, message
    assert digests(project) == before


def test_bad_config_through_the_cli_exits_2_without_traceback(
    clean_project: Path, tmp_path: Path
) -> None:
    project = tmp_path / "p"
    shutil.copytree(clean_project, project, symlinks=True)
    before = digests(project)
    proc = mlops_process(  # the installed entry point: its exit status and stderr
        "compose",
        "candidates.random_forest.n_estimators=-3",
        "train.cv=0",
        cwd=project,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "override 'candidates.random_forest.n_estimators=-3'" in proc.stderr
    assert "must be an int in the range [1, inf). Got -3" in proc.stderr
    assert "train.cv" in proc.stderr  # every problem reported, not just the first
    assert digests(project) == before


def test_stage_revalidates_params(tmp_path: Path) -> None:
    """`dvc exp run -S` writes params.yaml without our checks: loading refuses it."""
    project = copy_project(tmp_path / "p")
    params = project / "params.yaml"
    params.write_text(
        params.read_text().replace(
            "_target_: sklearn.ensemble.RandomForestClassifier", "_target_: os.system"
        )
    )
    with pytest.raises(ConfigError, match=r"params.yaml: candidates.random_forest._target_"):
        config.load_params(project)


def test_unparseable_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not compose"):
        config.compose(ROOT, ["dataset=no_such_dataset"])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dataset.name", "../production/20240101T000000-0123456789ab"),
        ("dataset.name", "churn_example\n"),  # Python's `$` matched before a final newline
        ("monitor.target", "local\n"),
        ("maintain.target", "local\n"),
    ],
)
def test_names_that_become_paths_are_plain_identifiers(
    tmp_path: Path, key: str, value: str
) -> None:
    """What `dvc exp run -S dataset.name=...` writes into params.yaml is refused by every
    stage's params check (load_params): names that become paths match their schema pattern
    whole, as JSON Schema means it (`$` is the end of the string)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError) as caught:
        config.load_params(tmp_path, hyperparameters=False)
    text = caught.value.render()
    assert f"{key}: expected a string matching ^[a-z][a-z0-9_]*$" in text, text


def test_a_deploy_target_name_is_matched_whole(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    targets = params["deploy"]["targets"]
    targets["local\n"] = targets.pop("local")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"deploy\.targets\.local\n: key not allowed here"):
        config.load_params(tmp_path, hyperparameters=False)


# --------------------------------------------------------------------- secrets (issue 10, #6)
SECRET = "s3cr3t-value-that-must-never-be-written"


@pytest.mark.parametrize(
    ("old", "new", "source", "key", "said"),
    [
        (
            "  seed: 42 ",
            "  seed: ${oc.env:MLOPS_TEST_SECRET} ",
            "conf/config.yaml",
            "project.seed",
            "reads the environment (`oc.env`)",
        ),
        (
            "  seed: 42 ",
            "  seed: ${oc.decode:${oc.env:MLOPS_TEST_SECRET}} ",
            "conf/config.yaml",
            "project.seed",
            "reads the environment (`oc.env`)",
        ),
        (
            "  seed: 42 ",
            "  seed: ${now:%Y} ",
            "conf/config.yaml",
            "project.seed",
            "calls the resolver `now`",
        ),
    ],
    ids=["oc.env", "oc.decode of oc.env", "now"],
)
def test_conf_cannot_read_the_environment(
    clean_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: str,
    new: str,
    source: str,
    key: str,
    said: str,
) -> None:
    """Issue 10: `${oc.env:VAR}` resolved a secret into params.yaml (then dvc.lock, the model
    card, DVC's run cache, experiment refs) and `compose --check` printed it in its diff."""
    monkeypatch.setenv("MLOPS_TEST_SECRET", SECRET)
    project = tmp_path / "p"
    shutil.copytree(clean_project, project, symlinks=True)
    path = project / "conf/config.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    before = digests(project)
    for run in (config.write, config.check):
        with pytest.raises(ConfigError) as info:
            run(project)
        message = info.value.render()
        assert f"{source}: {key}: {said}" in message, message
        assert "secrets never live in conf/" in message and "MLOPS_SERVICE_TOKEN" in message
        assert SECRET not in message
    proc = mlops("compose", "--check", cwd=project, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and said in proc.stderr
    assert digests(project) == before


def test_an_override_cannot_read_the_environment(clean_project: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(clean_project, project, symlinks=True)
    before = digests(project)
    override = "deploy.targets.local.serve.auth.token_file=${oc.env:HOME}"
    proc = mlops("compose", override, cwd=project, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        f"override '{override}': deploy.targets.local.serve.auth.token_file: reads the "
        "environment (`oc.env`)" in proc.stderr
    ), proc.stderr
    assert digests(project) == before


def test_stage_refuses_an_interpolation_that_survived_into_params(tmp_path: Path) -> None:
    """`dvc exp run -S` composes without our checks (DVC's own Hydra call): an escaped
    interpolation survives resolution as text, and the stages' re-validation refuses it."""
    from dvc.utils.hydra import compose_and_dump

    project = copy_project(tmp_path / "p")
    override = r"deploy.targets.local.serve.auth.token_env=\${oc.env:MLOPS_TEST_SECRET}"
    params = project / "params.yaml"
    compose_and_dump(params, str(project / "conf"), None, "config", str(project), [override])
    assert "${oc.env:MLOPS_TEST_SECRET}" in params.read_text()
    with pytest.raises(ConfigError) as info:
        config.load_params(project, hyperparameters=False)
    message = info.value.render()
    assert (
        "params.yaml: deploy.targets.local.serve.auth.token_env: reads the environment "
        "(`oc.env`)" in message
    ), message
    assert "secrets never live in conf/" in message


def test_a_remembered_composition_follows_every_conf_edit(tmp_path: Path) -> None:
    """compose() reuses a composition only for byte-identical conf/ and overrides, and hands out
    a copy: a caller editing its data, or an edit to any conf/ file (conf/local included), can
    never leak into the next composition."""
    project = copy_project(tmp_path / "p")
    first = config.compose(project)
    first.data["project"]["seed"] = -1
    again = config.compose(project)
    assert again.data["project"]["seed"] == 42 and again.text == first.text
    split = project / "conf/split/hash.yaml"
    split.write_text(split.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    assert config.compose(project).data["split"]["test_size"] == 0.25
    (project / "conf/local/default.yaml").write_text("# @package _global_\ntrain: {cv: 3}\n")
    assert config.compose(project).data["train"]["cv"] == 3
    assert config.compose(project, ["train.cv=4"]).data["train"]["cv"] == 4
    (project / "conf/local/default.yaml").unlink()
    assert config.compose(project).data["train"]["cv"] == 5


def test_the_train_stage_checks_every_candidates_hyperparameters(tmp_path: Path) -> None:
    """`train` (one stage for every candidate) loads params with every candidate's scikit-learn
    constraints checked, and a bad value is refused naming its candidate and key; stages that
    build no estimator skip those constraints (`hyperparameters=False`)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["candidates"]["random_forest"]["n_estimators"] = -3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    config.load_params(tmp_path, hyperparameters=False)
    with pytest.raises(ConfigError, match=r"candidates\.random_forest\.n_estimators: "):
        config.load_params(tmp_path)
