"""`mlops select GROUP=OPTION`: a choice persisted as a one-line edit of conf/config.yaml, and
`mlops compose --check` naming the choice a stale params.yaml was composed with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import choices, cli, config
from pipeline.errors import ConfigError, StaleParamsError
from tests.conftest import copy_project, digests


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("select") / "p")


@pytest.fixture
def project(clean: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "p"
    shutil.copytree(clean, dest, symlinks=True)
    return dest


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


def test_select_is_a_one_line_edit_that_dvc_composes_the_same(
    project: Path, tmp_path: Path
) -> None:
    from dvc.utils.hydra import compose_and_dump

    before = (project / "conf/config.yaml").read_text()
    composed, changed = choices.select(project, ["dataset=churn_example"])
    assert changed == [("dataset", "breast_cancer", "churn_example")]
    after = (project / "conf/config.yaml").read_text()
    assert _changed_lines(before, after) == [
        (
            "  - dataset: breast_cancer        # what to learn from: source, target, declared "
            "column schema;",
            "  - dataset: churn_example        # what to learn from: source, target, declared "
            "column schema;",
        )
    ]
    params = (project / "params.yaml").read_text()
    assert composed.text == params and "name: churn_example" in params
    config.check(project)  # what `make run` does first
    out = tmp_path / "dvc-params.yaml"  # what `dvc exp run` composes, with no override
    compose_and_dump(out, str(project / "conf"), None, "config", str(tmp_path), [])
    assert out.read_text() == params
    # selecting back restores both files byte for byte
    choices.select(project, ["dataset=breast_cancer"])
    assert (project / "conf/config.yaml").read_text() == before


@pytest.mark.parametrize(
    ("text", "option", "expected"),
    [
        ("  - split: hash         # how\n", "stratified", "  - split: stratified   # how\n"),
        (
            "  - split: hash   # how\n",
            "stratified_by_region",
            "  - split: stratified_by_region  # how\n",
        ),
        ("  - split: hash # how\n", "stratified", "  - split: stratified # how\n"),
        ("  - split: hash\n  # next line\n", "time", "  - split: time\n  # next line\n"),
        ("  - split: stratified   # how\n", "time", "  - split: time         # how\n"),
        ("  - split: hash\n", "true", '  - split: "true"\n'),
    ],
)
def test_edit_keeps_comments_in_their_column(text: str, option: str, expected: str) -> None:
    doc = f"defaults:\n{text}"
    [choice] = choices.read_choices(doc)
    assert choices.edit(doc, [(choice, option)]) == f"defaults:\n{expected}"


BAD = [
    (["dataset=nope"], "no option 'nope': expected one of breast_cancer, churn_example, diabetes"),
    (["task=regression"], "conf/dataset/breast_cancer.yaml: task: overrides the choice"),
    (["train.cv=3"], "train.cv: not a config group chosen in conf/config.yaml"),
    (["+experiment=fast"], "expected GROUP=OPTION"),
    (["dataset"], "expected GROUP=OPTION"),
    (["split=../../etc"], "no option '../../etc'"),
    (["split=time", "split=hash"], "split: selected more than once"),
    (["split=time"], "split.time_column: required value is not set"),  # a dataset must set it
]


@pytest.mark.parametrize(("selections", "expected"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_a_refused_selection_changes_nothing(
    project: Path, selections: list[str], expected: str
) -> None:
    before = digests(project, ("conf/**/*", "params.yaml"))
    with pytest.raises(ConfigError) as info:
        choices.select(project, selections)
    assert expected in info.value.render()
    assert digests(project, ("conf/**/*", "params.yaml")) == before


def test_a_selection_that_fails_validation_is_refused(project: Path) -> None:
    bad = project / "conf/dataset/broken.yaml"
    text = (project / "conf/dataset/churn_example.yaml").read_text()
    bad.write_text(text.replace("name: churn_example", "name: Not-A-Name"))
    before = digests(project, ("conf/**/*", "params.yaml"))
    with pytest.raises(ConfigError, match=r"dataset\.name"):
        choices.select(project, ["dataset=broken"])
    assert digests(project, ("conf/**/*", "params.yaml")) == before


def test_stale_check_names_the_choice_and_the_command(project: Path) -> None:
    config.write(project, ["dataset=diabetes"])
    with pytest.raises(StaleParamsError) as info:
        config.check(project)
    message = info.value.render()
    assert "composed with dataset=diabetes (conf/ chooses breast_cancer)" in message
    assert "`mlops select dataset=diabetes`" in message
    choices.select(project, ["dataset=diabetes"])
    config.check(project)


def test_stale_check_names_two_choices(project: Path) -> None:
    config.write(project, ["dataset=churn_example", "split=stratified"])
    with pytest.raises(
        StaleParamsError, match=r"mlops select (dataset|split)=\w+ (dataset|split)="
    ):
        config.check(project)


def test_stale_check_after_a_value_override_points_at_restoring(project: Path) -> None:
    config.write(project, ["train.cv=3"])
    with pytest.raises(StaleParamsError) as info:
        config.check(project)
    message = info.value.render()
    assert "mlops select" not in message
    assert "`git checkout params.yaml` restores it" in message


def test_compose_with_a_group_override_says_it_is_not_saved(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["compose", "dataset=diabetes", "train.cv=3"]) == 0
    err = capsys.readouterr().err
    assert "note: dataset=diabetes is not saved in conf/" in err
    assert "`mlops select dataset=diabetes`" in err and "train.cv" not in err
    assert cli.main(["select", "dataset=diabetes"]) == 0
    out = capsys.readouterr().out
    assert "conf/config.yaml: dataset: breast_cancer -> diabetes" in out
    assert cli.main(["compose", "--check"]) == 0


def test_select_without_arguments_lists_the_choices(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert cli.main(["select"]) == 0
    out = capsys.readouterr().out
    assert "dataset" in out and "breast_cancer" in out and "churn_example, diabetes" in out
