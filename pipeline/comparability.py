"""Whether two models answer the same question, so that one can be judged against the other.

A model's *profile* is what its bundle's input signature (`signature.json`, `x-mlops`) says it
answers: the task, the target column, the classes (classification) and its input fields with
their types. Two models are comparable when their profiles agree on all of these; the declared
ranges and category lists may differ (data grows), the fields' order may too (models select
columns by name).

Why it matters: the deploy gate rescores the incumbent on the current test split and compares
the two with a paired bootstrap. After a change of dataset, target, task or input columns the
incumbent cannot score those rows, or scores another question: the comparison is meaningless.
Such a change starts a new line of releases: the gate records that (and why) instead of failing
on missing columns, and applies only the absolute gates and the smoke test.

A release record (`deploy/<target>.json`) carries a partial profile (`model`: task, classes,
target, inputs), so a non-comparable incumbent is recognised even when its bundle has not been
fetched; a partial profile compares only what it holds.

This module reads plain dictionaries and imports no stage, so every layer that needs the rule
(the deploy gate; monitoring, which must not judge traffic with a model of another signature)
can share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN = 5  # names listed per difference before "and N more"


def profile(signature: Mapping[str, Any]) -> dict[str, Any]:
    """The full profile of a model from its input signature (signature.json)."""
    meta = signature["x-mlops"]
    classes = meta.get("classes")
    return {
        "task": meta["task"],
        "target": meta["target"],
        "classes": None if classes is None else [str(c) for c in classes],
        "inputs": {str(f["name"]): str(f["type"]) for f in meta["fields"]},
    }


def from_record(model: Mapping[str, Any] | None) -> dict[str, Any]:
    """The partial profile a release record's `model` entry holds (older records hold only
    task and classes; a hand-written one may hold nothing)."""
    model = model or {}
    out: dict[str, Any] = {}
    for key in ("task", "target", "inputs"):
        if model.get(key) is not None:
            out[key] = model[key]
    if "task" in out and "classes" in model:  # a regressor's classes are null, and recorded
        classes = model["classes"]
        out["classes"] = None if classes is None else [str(c) for c in classes]
    return out


def line_id(profile: Mapping[str, Any]) -> str | None:
    """A short, stable name for the line of releases a (partial) profile belongs to: the same
    task, target and inputs give the same id. None for an empty profile (nothing known)."""
    import hashlib
    import json

    if not profile:
        return None
    text = json.dumps(dict(profile), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def differences(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """Why a model with profile `new` cannot be compared with one with profile `old` (empty:
    comparable, as far as both profiles tell). Phrased for a reviewer: "task: regression, was
    classification"."""
    out = []
    both = [k for k in ("task", "target", "classes") if k in new and k in old]
    for key in both:
        if key == "classes" and new.get("task") != old.get("task"):
            continue  # a change of task says it: one has classes, the other none
        if new[key] != old[key]:
            out.append(f"{key}: {_show(new[key])}, was {_show(old[key])}")
    if "inputs" in new and "inputs" in old:
        now, was = dict(new["inputs"]), dict(old["inputs"])
        added = sorted(set(now) - set(was))
        removed = sorted(set(was) - set(now))
        retyped = sorted(n for n in set(now) & set(was) if now[n] != was[n])
        if added:
            out.append(f"inputs added: {_names(added)}")
        if removed:
            out.append(f"inputs removed: {_names(removed)}")
        if retyped:
            shown = [f"{n} {now[n]} (was {was[n]})" for n in retyped]
            out.append(f"input types changed: {_names(shown)}")
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    return "none" if value is None else str(value)
