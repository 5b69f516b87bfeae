"""Typed settings of one service target (`deploy.targets.<name>.serve` in params.yaml).

Built from params that `pipeline.config.load_params` has validated against
`pipeline/schemas/deploy.schema.json`, so nothing is checked twice here; only what the schema
cannot know (the target exists and is a service, the secret can be found) is checked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class AuthSettings:
    token_env: str  # name of the environment variable holding the bearer token
    token_file: Path | None  # or a file holding it (a mounted secret), relative to the root
    predict_requires_token: bool


@dataclass(frozen=True)
class ServeSettings:
    target: str
    host: str
    port: int
    reject_unseen: bool  # unseen_policy == "reject"
    threads: int  # OpenMP/BLAS threads of the model thread
    auth: AuthSettings
    max_body_bytes: int
    max_records: int
    feedback_per_minute: int
    max_batch: int
    max_wait_s: float
    log_dir: Path  # absolute
    rotate_bytes: int
    keep: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any], target: str, root: Path) -> ServeSettings:
        targets = params["deploy"]["targets"]
        if target not in targets:
            raise ConfigError(
                f"no deployment target {target!r} in params.yaml",
                hint="declared targets: " + ", ".join(sorted(targets)),
            )
        spec = targets[target]
        if spec["kind"] != "service":
            raise ConfigError(
                f"target {target!r} is of kind {spec['kind']!r}, not a service",
                hint="`mlops serve` serves targets of kind service; batch targets are scored "
                "with `mlops predict`",
            )
        serve = spec["serve"]
        auth, limits, batching, log = (
            serve["auth"],
            serve["limits"],
            serve["batching"],
            serve["log"],
        )
        token_file = auth.get("token_file")
        return cls(
            target=target,
            host=serve["host"],
            port=int(serve["port"]),
            reject_unseen=serve["unseen_policy"] == "reject",
            threads=int(serve["threads"]),
            auth=AuthSettings(
                token_env=auth["token_env"],
                token_file=None if token_file is None else root / token_file,
                predict_requires_token=bool(auth["predict_requires_token"]),
            ),
            max_body_bytes=int(limits["max_body_bytes"]),
            max_records=int(limits["max_records"]),
            feedback_per_minute=int(limits["feedback_per_minute"]),
            max_batch=int(batching["max_batch"]),
            max_wait_s=float(batching["max_wait_ms"]) / 1000.0,
            log_dir=root / log["dir"],
            rotate_bytes=int(log["rotate_bytes"]),
            keep=int(log["keep"]),
        )


def resolve_token(auth: AuthSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the environment variable first, then the file; None when neither has
    one (feedback then answers 503 instead of being open). Secrets are never in conf/."""
    env = os.environ if environ is None else environ
    value = env.get(auth.token_env, "").strip()
    if value:
        return value
    if auth.token_file is not None:
        try:
            value = auth.token_file.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return value or None
    return None
