"""The deploy gates: may the champion (or a pinned release) go to this target?

Stage `deploy@<target>` (`python -m pipeline.deploy.stage TARGET`, see `pipeline.deploy.stage`)
runs `decide` here. It reads the committed `deploy/TARGET.json` (the current
release; a dependency, never written here: a stage that rewrote it would undo every
`git revert`), the champion's bundle, the released bundles and the test split, and writes
`reports/deploy/TARGET.json` with one decision and all of its evidence:

* `already_released`: the candidate bundle is the one deploy/TARGET.json names (as its release,
  or as the candidate of a running rollout); nothing to do.
* `propose`: every gate passed; the proposal names the bundle, the next release id and the
  parent release. `mlops release` turns it into deploy/TARGET.json.
* `blocked`: with every reason (all gates run, so one review shows everything to fix). A
  blocked champion changes nothing.

Gates, in order:

1. rejected: a bundle named by a release on the target's `rejected` list is never proposed.
2. floors: the candidate's test metrics against the absolute floors (`gates.floors`; maxima for
   losses) and the baseline floors (`gates.baseline`: beat the trivial baseline recorded in the
   bundle, rescored on the test split, by the declared amounts; see `pipeline/floors.py`).
3. compare (champion with an incumbent only): the incumbent bundle is rescored on the *current*
   test split and the paired bootstrap interval of the improvement is judged by the declared
   mode and margin (see `pipeline/paired_bootstrap.py`; a relative margin is a share of the
   incumbent's score).
   A pinned release (rollback) skips this gate. So does an incumbent that is not comparable
   (another task, target, classes or input fields: `pipeline/comparability.py`): the champion
   then starts a new line of releases, the report says so and why (`compare.comparable` false,
   `proposal.new_line`), and only the absolute gates and the smoke test apply.
4. smoke: a fresh process with the serving thread settings loads the bundle, validates held-out
   rows through the signature and reproduces the offline predictions (see `smoke.py`). Never
   skipped: no proposal without it.

The report holds no clock time, so the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline import comparability, metrics, paired_bootstrap
from pipeline import floors as floor_rules
from pipeline.bundle_format import PREDICTIONS, SIGNATURE, bundle_id, verify
from pipeline.deploy import smoke
from pipeline.deploy.bundle import Bundle, load_bundle
from pipeline.errors import ArtifactError, MlopsError
from pipeline.floors import Baseline
from pipeline.io import read_json, sha256_file
from pipeline.params import CompareSpec, GateSpec, SmokeSpec, TargetSpec
from pipeline.paths import (
    CHAMPION_BUNDLE,
    COMPARISONS_DIR,
    release_path,
    released_bundle,
    split_path,
)
from pipeline.release_record import ReleaseRecord, next_release_id, parse_release_id, read_record

PROPOSE = "propose"
BLOCKED = "blocked"
ALREADY_RELEASED = "already_released"
DECISIONS = (PROPOSE, BLOCKED, ALREADY_RELEASED)


class Candidate:
    """The bundle the gate judges: the champion's (models/bundle) or a pinned release's."""

    def __init__(self, source: str, directory: Path, digest: str, meta: dict[str, Any]) -> None:
        self.source = source  # champion | pin
        self.directory = directory
        self.digest = digest
        self.meta = meta

    @property
    def id(self) -> str:
        return bundle_id(self.digest)

    def profile(self) -> dict[str, Any]:
        """What the model answers (`pipeline.comparability`), from its input signature."""
        return comparability.profile(read_json(self.directory / SIGNATURE))

    def summary(self) -> dict[str, Any]:
        model = self.meta["model"]
        profile = self.profile()
        return {
            "source": self.source,
            "bundle": {"id": self.id, "sha256": self.digest, "path": str(self.directory)},
            # the release record keeps target and inputs, so that a later gate can tell a
            # non-comparable incumbent even before its bundle is fetched
            "model": {
                **{k: model.get(k) for k in ("name", "estimator", "task", "classes")},
                "target": profile["target"],
                "inputs": profile["inputs"],
            },
        }


# ------------------------------------------------------------------------------- loading
def locate_candidate(spec: TargetSpec) -> tuple[Candidate | None, str | None]:
    """The candidate bundle, or None and why it cannot be judged (a pin not in the workspace)."""
    if spec.pin is None:
        try:
            digest, meta = verify(CHAMPION_BUNDLE)
        except MlopsError as exc:  # a tampered or half-written bundle: never proposed
            return None, f"bundle: the champion's bundle fails verification: {exc}"
        return Candidate("champion", CHAMPION_BUNDLE, digest, meta), None
    _, pinned = parse_release_id(spec.pin)
    directory = released_bundle(pinned)
    try:
        digest, meta = verify(directory)
    except MlopsError as exc:
        return None, (
            f"pinned release {spec.pin}: bundle {directory} is not usable ({exc}); fetch it "
            f"with `dvc pull {directory}.dvc` (or `dvc checkout`)"
        )
    if bundle_id(digest) != pinned:
        return None, (
            f"pinned release {spec.pin}: {directory} holds bundle {bundle_id(digest)}, "
            "not the pinned one; refusing a replaced bundle"
        )
    return Candidate("pin", directory, digest, meta), None


def rescore(bundle: Bundle, test: Any) -> tuple[paired_bootstrap.PairedScores, dict[str, float]]:
    """A released bundle's predictions and metrics on today's test split."""
    from pipeline.deploy import scoring

    model_meta = bundle.meta["model"]
    missing = [c for c in model_meta["features"] if c not in test.columns]
    if missing or model_meta["target"] not in test.columns:
        raise MlopsError(
            f"bundle {bundle.id} cannot score the current test split: missing columns "
            + ", ".join(missing or [model_meta["target"]])
        )
    pred, proba = scoring.predict(bundle.model, test[model_meta["features"]], bundle.task)
    classes = model_meta.get("classes")
    y = test[model_meta["target"]].to_numpy()
    return (
        paired_bootstrap.PairedScores(pred, proba, classes),
        metrics.compute(bundle.task, y, pred, proba, classes),
    )


def offline_scored(candidate: Candidate) -> paired_bootstrap.PairedScores:
    """The champion's predictions on the test split, from its bundle (no model load)."""
    import pandas as pd

    from pipeline.deploy import scoring

    frame = pd.read_parquet(candidate.directory / PREDICTIONS).sort_values(scoring.ROW)
    classes = candidate.meta["model"].get("classes")
    proba = None
    if classes:
        proba = frame[[scoring.proba_column(c) for c in classes]].to_numpy(dtype=float)
    return paired_bootstrap.PairedScores(frame[scoring.PREDICTION].to_numpy(), proba, classes)


# --------------------------------------------------------------------------------- gates
def floor_gate(
    gates: GateSpec,
    values: Mapping[str, float],
    baseline_record: Mapping[str, Any] | None,
    y: Any,
) -> tuple[dict[str, Any], list[str]]:
    """Absolute floors as declared, and baseline floors from the trivial baseline recorded in
    the bundle, rescored on the gate's test split (`pipeline.floors`, as in selection)."""
    margins = gates.baseline
    evidence: dict[str, Any] = {}
    scores: dict[str, float] | None = None
    if margins and baseline_record is None:
        # a bundle packaged before baseline floors: only its absolute floors can be checked
        evidence["baseline"] = {"skipped": "the bundle records no baseline"}
        margins = {}
    elif baseline_record is not None:
        baseline = Baseline.from_dict(baseline_record)
        scores, undefined = baseline.score(y)
        evidence["baseline"] = {
            "estimator": baseline_record.get("estimator"),
            "strategy": baseline.strategy,
            "test": scores,
            **({"undefined": undefined} if undefined else {}),
        }
    floors = floor_rules.resolve(gates.floors, margins, scores)
    checks, failures = floor_rules.check(floors, values)
    return {**evidence, "checks": checks}, [f"floor: test {why}" for why in failures]


def compare_gate(
    settings: CompareSpec,
    champion: paired_bootstrap.PairedScores,
    incumbent: paired_bootstrap.PairedScores,
    y: Any,
    task: str,
    memo: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The compare gate's evidence and reasons; `memo`: see `paired_bootstrap.compare`."""
    metric = settings.metric
    result = paired_bootstrap.compare(
        metric,
        task,
        y,
        champion,
        incumbent,
        confidence=settings.confidence,
        resamples=settings.resamples,
        seed=settings.seed,
        memo=memo,
    )
    amount = settings.margin
    if result is None:
        why = {
            name: metrics.explain(task, y, s.pred, s.proba, s.classes)[1].get(metric)
            for name, s in (("champion", champion), ("incumbent", incumbent))
        }
        detail = "; ".join(f"{n}: {w}" for n, w in why.items() if w)
        reason = f"compare: {metric} cannot be computed for both models on the test split" + (
            f" ({detail})" if detail else ""
        )
        base = {"mode": settings.mode, "margin": {"declared": amount.declared()}}
        return {**base, "metric": metric, "passed": False, "rule": reason}, [reason]
    # a relative margin is a share of the incumbent's score on this test split
    margin = amount.resolve(result.incumbent)
    ok, rule = paired_bootstrap.judge(result, settings.mode, margin)
    if amount.kind == "relative":
        rule += f": margin {amount.describe(result.incumbent, 'the incumbent')}"
    evidence = {
        "mode": settings.mode,
        "margin": amount.record(result.incumbent),
        **result.to_dict(),
        "passed": ok,
        "rule": rule,
    }
    if ok:
        return evidence, []
    interval = f"[{result.low:+.4f}, {result.high:+.4f}]" if result.low is not None else "(none)"
    return evidence, [
        f"compare: {metric} improvement over the incumbent {result.estimate:+.4f}, "
        f"{result.confidence:.0%} interval {interval}; fails {rule}"
    ]


def smoke_gate(
    candidate: Candidate,
    settings: SmokeSpec,
    test_sha256: str,
    reference_source: paired_bootstrap.PairedScores | None,
    n_test: int,
) -> tuple[dict[str, Any], list[str]]:
    reference = None
    if candidate.meta["data"].get("test_sha256") != test_sha256:
        if reference_source is None:
            reason = "smoke: no reference predictions for the current test split"
            return {"passed": False, "problems": [reason]}, [reason]
        positions = smoke.held_out_rows(n_test, settings.rows)
        proba = reference_source.proba
        reference = {
            "prediction": reference_source.pred[positions].tolist(),
            "proba": None if proba is None else proba[positions].tolist(),
        }
    result = smoke.run(
        candidate.directory,
        split_path("test"),
        rows=settings.rows,
        tolerance=settings.score_tolerance,
        threads=settings.threads,
        expected_digest=candidate.digest,
        reference=reference,
    )
    reasons = [f"smoke: {p}" for p in result.get("problems", [])]
    if not result.get("passed") and not reasons:
        reasons = ["smoke: failed without a reason"]
    return result, reasons


# ------------------------------------------------------------------------------ decision
def decide(target: str, spec: TargetSpec) -> dict[str, Any]:
    """The gate decision for `target`, with every piece of evidence."""
    from pipeline.tables import read_table

    record = read_record(release_path(target), target)
    report: dict[str, Any] = {
        "target": target,
        "kind": spec.kind,
        "pin": spec.pin,
        "current": {"release": record.release, "bundle": record.data.get("bundle")},
        "inputs": {
            "release_record_sha256": sha256_file(release_path(target)),
            "settings_sha256": spec.digest,
        },
        "proposal": None,
    }
    candidate, problem = locate_candidate(spec)
    if candidate is None:
        return {**report, "decision": BLOCKED, "reasons": [problem], "candidate": None}
    report["candidate"] = candidate.summary()
    rollout = record.running_rollout
    if rollout is not None and candidate.digest == rollout.candidate.bundle_sha256:
        report["candidate"]["metrics"] = candidate.meta["metrics"]["test"]
        return {
            **report,
            "decision": ALREADY_RELEASED,
            "reasons": [
                f"bundle {candidate.id} is the candidate of the running {rollout.strategy} "
                f"rollout ({rollout.candidate.release}, step {rollout.step}): `mlops rollout` "
                "promotes or aborts it"
            ],
            "gates": {},
        }
    if record.release is not None and candidate.id == record.bundle_id:
        report["candidate"]["metrics"] = candidate.meta["metrics"]["test"]
        # The same bundle id is not proof of the same bytes: the released copy is verified
        # against the record's full digest, exactly as an incumbent that differs would be.
        try:
            if candidate.digest != record.bundle_sha256:
                raise ArtifactError(
                    f"bundle {candidate.id}: the champion's digest {candidate.digest} is not "
                    f"the released {record.bundle_sha256}"
                )
            verify(released_bundle(candidate.id), record.bundle_sha256)
        except MlopsError as exc:
            reason = (
                f"current release {record.release} cannot be verified: {exc} "
                f"(fetch it with `dvc pull {released_bundle(candidate.id)}.dvc`)"
            )
            return {**report, "decision": BLOCKED, "reasons": [reason], "gates": {}}
        return {
            **report,
            "decision": ALREADY_RELEASED,
            "reasons": [f"bundle {candidate.id} is the current release {record.release}"],
            "gates": {},
        }
    test = read_table(split_path("test"), "parquet")
    test_sha256 = sha256_file(split_path("test"))
    gates, reasons, values, own = _judge(candidate, spec, record, test, test_sha256)
    report["candidate"]["metrics"] = values
    checks, smoke_reasons = smoke_gate(candidate, spec.gates.smoke, test_sha256, own, len(test))
    gates["smoke"] = checks
    reasons += smoke_reasons
    report["gates"] = gates
    if reasons:
        return {**report, "decision": BLOCKED, "reasons": reasons}
    report["proposal"] = {
        "source": candidate.source,
        "bundle": candidate.summary()["bundle"],
        "release": next_release_id(record.release, candidate.id),
        "parent": record.release,
        "pinned": spec.pin,
    }
    if gates["compare"].get("comparable") is False:
        report["proposal"]["new_line"] = {
            "replaces": record.release,
            "differences": gates["compare"]["differences"],
        }
    return {**report, "decision": PROPOSE, "reasons": []}


def _judge(
    candidate: Candidate,
    spec: TargetSpec,
    record: ReleaseRecord,
    test: Any,
    test_sha256: str,
) -> tuple[dict[str, Any], list[str], dict[str, float], paired_bootstrap.PairedScores | None]:
    """rejected, floors and compare gates: (evidence, reasons, candidate metrics, and the
    candidate's own rescored outputs when it had to be rescored)."""
    gates: dict[str, Any] = {}
    reasons: list[str] = []
    rejected_by = spec.rejected_bundles.get(candidate.id)
    gates["rejected"] = {"passed": rejected_by is None, "release": rejected_by}
    if rejected_by:
        reasons.append(
            f"rejected: bundle {candidate.id} was rejected as release {rejected_by} "
            "(deploy.targets.*.rejected)"
        )
    own: paired_bootstrap.PairedScores | None = None
    if candidate.source == "pin":
        # A pinned release was gated against an older split: score it on today's.
        try:
            own, values = rescore(load_bundle(candidate.directory, candidate.digest), test)
            metrics_on = "current test split (rescored)"
        except MlopsError as exc:
            values, metrics_on = {}, "unavailable"
            reasons.append(f"pin: {exc}")
    else:
        values, metrics_on = dict(candidate.meta["metrics"]["test"]), "test split"
    y = test[candidate.meta["model"]["target"]].to_numpy()
    evidence, floor_reasons = floor_gate(spec.gates, values, candidate.meta.get("baseline"), y)
    gates["floors"] = {"metrics_on": metrics_on, **evidence}
    reasons += floor_reasons
    gates["compare"], compare_reasons = _compare(candidate, spec, record, test, test_sha256)
    reasons += compare_reasons
    return gates, reasons, values, own


def _compare(
    candidate: Candidate, spec: TargetSpec, record: ReleaseRecord, test: Any, test_sha256: str
) -> tuple[dict[str, Any], list[str]]:
    """The comparison with the incumbent, or why there is none: no incumbent, a pin, or an
    incumbent that answers another question (`pipeline.comparability`): then the champion
    starts a new line of releases, judged by the absolute gates and the smoke test only."""
    if candidate.source == "pin":
        return {"skipped": f"pinned release {spec.pin}: relative gates do not apply"}, []
    if record.release is None:
        return {"skipped": "no incumbent (first release): only absolute gates apply"}, []
    directory = released_bundle(str(record.bundle_id))
    problem: MlopsError | None = None
    try:
        verify(directory, record.bundle_sha256)
        incumbent = comparability.profile(read_json(directory / SIGNATURE))
    except MlopsError as exc:  # not fetched, or not intact: the record tells what it can
        problem, incumbent = exc, comparability.from_record(record.data.get("model"))
    differences = comparability.differences(candidate.profile(), incumbent)
    if differences:
        why = "; ".join(differences)
        return {
            "skipped": f"not comparable with {record.release}: {why}; a new line of releases: "
            "only the absolute gates and the smoke test apply",
            "comparable": False,
            "incumbent_release": record.release,
            "differences": differences,
        }, []
    try:
        if problem is not None:
            raise problem
        inc_scored, _ = rescore(load_bundle(directory, record.bundle_sha256), test)
    except MlopsError as exc:
        reason = (
            f"compare: incumbent {record.release} cannot be rescored: {exc} "
            f"(fetch it with `dvc pull {directory}.dvc`)"
        )
        return {"passed": False, "incumbent_release": record.release, "problem": str(exc)}, [reason]
    if candidate.meta["data"].get("test_sha256") != test_sha256:
        reason = "compare: the champion's bundle was built on another test split; run dvc repro"
        return {"passed": False, "incumbent_release": record.release}, [reason]
    y = test[candidate.meta["model"]["target"]].to_numpy()
    evidence, reasons = compare_gate(
        spec.gates.compare,
        offline_scored(candidate),
        inc_scored,
        y,
        candidate.meta["model"]["task"],
        memo=COMPARISONS_DIR,  # once for every target asking the same question
    )
    return {"incumbent_release": record.release, "comparable": True, **evidence}, reasons
