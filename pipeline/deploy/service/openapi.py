"""What the OpenAPI document (/openapi.json) and the /docs page show of the service.

The handlers build plain data and serialise it once (`http.json_response`), and records are
checked by the bundle's compiled signature, not by pydantic; so the pydantic models here are
never instantiated on a request. They exist to document the response shapes (FastAPI renders
them into `components.schemas`). The request schemas are the served bundle's own input
signature (`Record`, `PredictRequest`) and the feedback item, added to the document by
`document`, which the app regenerates when the served release changes.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse

from pipeline.deploy.service.releases import Served

# Swagger UI for /docs (serve.docs: true): one exact version, each file checked by the browser
# against its sha384 (subresource integrity), so a changed CDN file is refused, not run.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0"
SWAGGER_JS_SRI = "sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9"
SWAGGER_CSS_SRI = "sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I"


class Prediction(BaseModel):
    request_id: str = Field(
        description="Unique id of this record's prediction; quote it in POST /feedback"
    )
    prediction: str | float = Field(description="Class label (classification) or value")
    flags: list[str] = Field(
        description="Input values outside what training saw: out_of_range:<field>, "
        "unseen_category:<field> (accepted under unseen_policy: flag)"
    )
    proba: dict[str, float] | None = Field(
        None, description="Class probabilities, with ?proba=true (classifiers only)"
    )
    release: str | None = Field(
        None,
        description="During a canary rollout: the release that scored this record (the stable "
        "or the candidate, picked by a hash of the declared key or the request id)",
    )


class PredictResponse(BaseModel):
    release: str | None = Field(description="The release that scored these records")
    bundle: str = Field(description="Its bundle id")
    predictions: list[Prediction]


class FieldError(BaseModel):
    index: int | None = Field(description="Position of the record in the request (0 for one)")
    field: str | None
    message: str


class Problem(BaseModel):
    detail: str
    errors: list[FieldError] | None = None
    errors_total: int | None = Field(None, description="When more errors than listed")


class FeedbackItem(BaseModel):
    request_id: str = Field(description="From a /predict response")
    label: str | float | int | bool = Field(description="The true class or value")


class FeedbackResponse(BaseModel):
    accepted: int


class BundleRef(BaseModel):
    id: str
    sha256: str


class RolloutRef(BaseModel):
    strategy: str = Field(description="shadow | canary")
    step: int
    weight: float = Field(description="The candidate's share of traffic (shadow: 0)")
    candidate: str | None = Field(description="The candidate release")
    bundle: BundleRef | None = None


class VersionResponse(BaseModel):
    release: str | None
    bundle: BundleRef | None
    target: str
    rollout: RolloutRef | None = Field(
        None, description="Only while a rollout runs: the candidate loaded beside the release"
    )


class HealthResponse(BaseModel):
    status: str = Field(
        description="ok | no release | degraded (the declared release is not served: see "
        "error) | unhealthy (answered with 503: a log cannot be written, see log_error)"
    )
    model_loaded: bool
    release: str | None
    bundle: str | None
    desired_release: str | None
    in_sync: bool
    error: str | None
    uptime_seconds: float
    log_backlog: int
    log_error: str | None = Field(description="Why the prediction or feedback log is not written")
    rollout: RolloutRef | None = Field(None, description="Only while a rollout runs")


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of a route for its error statuses: each body is a `Problem`."""
    return {code: {"model": Problem} for code in codes}


def document(app: FastAPI, served: Served | None, max_records: int) -> dict[str, Any]:
    """The OpenAPI document of `app`'s routes, with the request schemas of `served` (the
    record schema only once a release is served) and the bearer security scheme."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_request_schemas(served, max_records))
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return schema


def docs_page(title: str) -> HTMLResponse:
    """Swagger UI for /openapi.json from the pinned, integrity-checked assets."""
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css" integrity="{SWAGGER_CSS_SRI}"
 crossorigin="anonymous" referrerpolicy="no-referrer"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js" integrity="{SWAGGER_JS_SRI}"
 crossorigin="anonymous" referrerpolicy="no-referrer"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});</script>
</body></html>
"""
    return HTMLResponse(page)


PREDICT_REQUEST = "PredictRequest"
FEEDBACK_REQUEST = "FeedbackRequest"


def json_body(schema: str) -> dict[str, Any]:
    """A route's required JSON request body: one of the schemas `_request_schemas` adds."""
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _request_schemas(served: Served | None, max_records: int) -> dict[str, Any]:
    """Request schemas: the record is the served bundle's own input signature."""
    if served is None:
        record: dict[str, Any] = {
            "type": "object",
            "description": "No release is served; the record schema appears once one is.",
        }
    else:
        signature = served.bundle.signature.to_dict()
        record = {
            k: signature[k]
            for k in ("title", "type", "additionalProperties", "required", "properties")
            if k in signature
        }
        record["description"] = (
            f"One input record of release {served.release} (bundle {served.bundle_id})"
        )
    ref = {"$ref": "#/components/schemas/Record"}
    item = FeedbackItem.model_json_schema()
    return {
        "Record": record,
        PREDICT_REQUEST: {
            "oneOf": [ref, {"type": "array", "items": ref, "minItems": 1, "maxItems": max_records}]
        },
        "FeedbackItem": item,
        FEEDBACK_REQUEST: {
            "oneOf": [
                {"$ref": "#/components/schemas/FeedbackItem"},
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/FeedbackItem"},
                    "minItems": 1,
                    "maxItems": max_records,
                },
            ]
        },
    }
