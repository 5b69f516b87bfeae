"""Typed settings of one service target (`deploy.targets.<name>.serve` in params.yaml).

Built from params that `pipeline.config.load_params` has validated against
`pipeline/schemas/deploy.schema.json`, so nothing is checked twice here; only what the schema
cannot know (the target exists and is a service, the secret can be found and is safe) is
checked.

Secrets (the bearer token, the key that hashes personal columns in the logs) never live in
conf/: the settings name an environment variable or a file. A secret shorter than
`MIN_SECRET_CHARS` is refused, and so is a secret file that every user of the machine can read
(a group-readable one is accepted with a warning: a mounted secret may rely on its group);
a declared file that is missing or unreadable is an error, not a silently closed endpoint.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError

LOG = logging.getLogger("mlops.serve")
MIN_SECRET_CHARS = 16  # `openssl rand -hex 16` gives 32


@dataclass(frozen=True)
class AuthSettings:
    token_env: str  # name of the environment variable holding the bearer token
    token_file: Path | None  # or a file holding it (a mounted secret), relative to the root
    predict_requires_token: bool


@dataclass(frozen=True)
class RedactSettings:
    """What the service does with the columns the dataset marks `personal: true` before a
    prediction is queued for the log: `drop` them, or replace each value by a keyed hash
    (HMAC-SHA256 with a secret key from `key_env` or `key_file`)."""

    personal: tuple[str, ...]  # columns marked personal in the dataset schema
    method: Literal["drop", "hash"]
    key_env: str
    key_file: Path | None  # absolute


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
    max_age_days: float | None  # log files whose newest entry is older are deleted
    redact: RedactSettings
    docs: bool  # serve /docs (Swagger UI, pinned, from a CDN)

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
        redact = log["redact"]
        key_file = redact.get("key_file")
        columns = params["dataset"]["columns"]
        personal = tuple(name for name, col in columns.items() if col.get("personal", False))
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
            max_age_days=None if log["max_age_days"] is None else float(log["max_age_days"]),
            redact=RedactSettings(
                personal=personal,
                method=redact["method"],
                key_env=redact["key_env"],
                key_file=None if key_file is None else root / key_file,
            ),
            docs=bool(serve["docs"]),
        )


def resolve_token(auth: AuthSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the environment variable first, then the file; None when neither is
    set (feedback then answers 503 instead of being open). Secrets are never in conf/."""
    return read_secret(auth.token_env, auth.token_file, "the bearer token", environ)


def read_secret(
    env_name: str, path: Path | None, what: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """A secret from the environment variable `env_name`, else from the file `path`; None when
    neither is set. Refused (ConfigError): a declared file that is missing, unreadable, empty or
    readable by every user, and a secret shorter than MIN_SECRET_CHARS."""
    env = os.environ if environ is None else environ
    value = env.get(env_name, "").strip()
    source = f"${env_name}"
    if not value and path is not None:
        value = _secret_file(path, what)
        source = str(path)
    if not value:
        return None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{what} in {source} has {len(value)} character(s); at least {MIN_SECRET_CHARS} "
            "are required",
            hint="generate one with `openssl rand -hex 32`",
        )
    return value


def _secret_file(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{what}: the declared file {path} cannot be read ({exc})",
            hint="mount the secret there, or set the file to null and use the environment variable",
        ) from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"{what}: {path} can be read or written by every user of this machine "
            f"(mode {stat.filemode(mode)})",
            hint=f"chmod 600 {path} (a Kubernetes secret volume: defaultMode: 0400)",
        )
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        LOG.warning(
            "%s: %s is readable by its group (mode %s); 600 keeps it to its owner",
            what,
            path,
            stat.filemode(mode),
        )
    if not text:
        raise ConfigError(f"{what}: the declared file {path} is empty")
    return text
