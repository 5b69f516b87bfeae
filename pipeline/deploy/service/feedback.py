"""The checks of POST /feedback: which (request id, label) pairs are accepted.

A label is accepted only for a request id the prediction log holds (`RequestIndex`: feedback
for a prediction never made cannot be joined to one), and only as the served model could have
predicted it: one of the model's classes, compared in the canonical spelling of categories
(`canonical_category`: `1`, `1.0` and `"1"` name one class) and logged in it, or a finite
number for a regressor. Every item is checked, so one response lists every refused item; the handler
accepts none when any is refused, so a client can resend the corrected list whole.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from pipeline.deploy.service.http import finite_number
from pipeline.deploy.service.releases import Served
from pipeline.values import canonical_category


def check_feedback(
    items: Sequence[Any], served: Served, known: Container[str]
) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """(request id, label) per item, the label as the log records it, and the errors
    (`{index, field, message}`, every item checked): the caller accepts all or nothing."""
    classes = served.bundle.signature.classes or list(served.classes or ())
    labels: list[tuple[str, Any]] = []
    errors: list[dict[str, Any]] = []

    def error(index: int, field: str | None, message: str) -> None:
        errors.append({"index": index, "field": field, "message": message})

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            error(index, None, "expected an object {request_id, label}")
            continue
        extra = sorted(set(item) - {"request_id", "label"})
        if extra:
            error(index, extra[0], "unknown field; expected request_id and label")
        rid, label = item.get("request_id"), item.get("label", None)
        if not isinstance(rid, str) or not rid:
            error(index, "request_id", "required: the request_id of a /predict response")
        elif rid not in known:
            error(
                index,
                "request_id",
                "unknown request id: no prediction with this id in the prediction log",
            )
        if "label" not in item or label is None:
            error(index, "label", "required: the true class or value")
            continue
        if served.classifier:
            if not isinstance(label, str | int | bool) and not (
                isinstance(label, float) and label.is_integer()
            ):
                error(index, "label", "expected a class label")
                continue
            text = canonical_category(label)
            if classes and text not in classes:
                error(
                    index,
                    "label",
                    "not a class of the model; expected one of " + ", ".join(classes),
                )
                continue
            value: Any = text
        else:
            if not finite_number(label):
                error(index, "label", "expected a finite number")
                continue
            value = float(label)
        if isinstance(rid, str):
            labels.append((rid, value))
    return labels, errors
