"""Redaction of personal columns before a prediction is logged.

The dataset schema marks columns that hold personal data (`personal: true`); the target's
`serve.log.redact.method` says what the service writes in their place. Redaction happens on the
model thread, before an entry is queued for the writer, so a raw value never reaches the queue,
the log files, the snapshot windows made from them, or a crash dump of the queue. The response
to the client is not redacted (it is the client's own data).

* `drop`: the column is left out of the entry. Monitoring cannot see it at all: a window
  then lacks the column, and monitoring counts an absent column as all null (its null-share
  check would fire), so a dropped column should not be monitored.
* `hash`: each value becomes HMAC-SHA256(key, canonical text) as 32 hex digits; null stays null
  (missingness is not personal and stays monitorable). The hash is keyed (a secret from
  `key_env`/`key_file`, never in conf/: an unkeyed hash of a small category set is reversed by
  hashing every candidate) and stable (the same value, spelled `1`, `1.0` or `"1"`, always gives
  the same digest: `pipeline.values.canonical_category`), so a hashed category can still be
  counted, compared between windows and joined on (an id column), but not read. Comparing it
  with the training reference needs the reference hashed with the same key, which a pure stage
  cannot do (the key is a secret); numbers lose their order and become categories.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from pipeline.deploy.service.secrets import read_secret
from pipeline.errors import ConfigError
from pipeline.params import RedactSettings
from pipeline.values import canonical_category, is_missing

DIGEST_HEX = 32  # 128 bits: no collisions in practice, half the width of the full digest


class Redactor:
    """Applies a target's redaction to the input fields of log entries."""

    def __init__(self, personal: tuple[str, ...], method: str, key: bytes | None) -> None:
        if method == "hash" and personal and not key:
            raise ValueError("hash redaction needs a key")
        self.personal = frozenset(personal)
        self.method = method
        self._key = key or b""

    @classmethod
    def from_settings(
        cls, settings: RedactSettings, environ: Mapping[str, str] | None = None
    ) -> Redactor:
        """The redactor of a target; a `hash` target with personal columns and no key is
        refused (the service would otherwise have to log raw values or nothing)."""
        key = None
        if settings.method == "hash" and settings.personal:
            key = read_secret(settings.key_env, settings.key_file, "the log hash key", environ)
            if key is None:
                raise ConfigError(
                    "serve.log.redact.method is hash, but no key is set for the personal "
                    f"column(s) {', '.join(settings.personal)}",
                    hint=f"export {settings.key_env}=$(openssl rand -hex 32) (or set "
                    "serve.log.redact.key_file); keep the key: a new key changes every digest",
                )
        return cls(settings.personal, settings.method, None if key is None else key.encode())

    def __bool__(self) -> bool:
        return bool(self.personal)

    def apply(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields` with its personal columns dropped or hashed (a new dict when it has any)."""
        if not self.personal.intersection(fields):
            return fields
        if self.method == "drop":
            return {k: v for k, v in fields.items() if k not in self.personal}
        return {k: self.digest(v) if k in self.personal else v for k, v in fields.items()}

    def digest(self, value: Any) -> str | None:
        if is_missing(value):
            return None
        text = canonical_category(value).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:DIGEST_HEX]
