"""What a running service says it serves: the one client of its `GET /version`, for `mlops
status` (one look) and `mlops sync` (polled until the swap lands).

* `service_url`: where a service target is asked. A bind-all host (`0.0.0.0`, empty) is asked
  on loopback: it is where the service listens, not an address to connect to.
* `read_version`: the answer (`{"release", "bundle": {"id", "sha256"} | null, "target"}`), or
  None when the service cannot be reached in `TIMEOUT_SECONDS`, answers with an error status,
  or answers something that is not a JSON object. "Unreachable" is an answer for status and
  sync, never an exception.
* `serves`: whether that answer is the declared release *and* its bytes (the same release id
  with another bundle digest is not in sync); `serves_record`: that, and the record's running
  rollout (candidate, its bytes, step and weight), or none.

The HTTP client is a parameter, so tests can use a stand-in (`httpx.MockTransport`) or a real
server on loopback alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from pipeline.release_record import ReleaseRecord

TIMEOUT_SECONDS = 1.0
BIND_ALL = ("0.0.0.0", "")  # noqa: S104 - recognised, never bound to here


def service_url(host: str, port: int) -> str:
    """http://host:port of a service listening on `host` (bind-all: asked on loopback)."""
    return f"http://{'127.0.0.1' if host in BIND_ALL else host}:{port}"


def read_version(
    url: str, *, client: httpx.Client | None = None, timeout: float = TIMEOUT_SECONDS
) -> dict[str, Any] | None:
    """GET <url>/version; None when the service cannot be reached or answers oddly."""
    import httpx

    get = httpx.get if client is None else client.get
    try:
        response = get(f"{url.rstrip('/')}/version", timeout=timeout)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def serves(seen: Mapping[str, Any], release: str | None, bundle_sha256: str | None) -> bool:
    """The service's answer names `release` and, for a release, its bundle's digest."""
    if seen.get("release") != release:
        return False
    return release is None or (seen.get("bundle") or {}).get("sha256") == bundle_sha256


def serves_record(seen: Mapping[str, Any], record: ReleaseRecord) -> bool:
    """The service runs what `record` declares: its release and bytes, and the running rollout
    (candidate and its bytes, step, weight) or none."""
    if not serves(seen, record.release, record.bundle_sha256):
        return False
    rollout, live = record.running_rollout, seen.get("rollout")
    if rollout is None:
        return live is None
    if not isinstance(live, Mapping):
        return False
    candidate = rollout.candidate
    return (
        live.get("candidate") == candidate.release
        and (live.get("bundle") or {}).get("sha256") == candidate.bundle_sha256
        and (live.get("step"), live.get("weight"), live.get("strategy"))
        == (rollout.step, rollout.weight, rollout.strategy)
    )


def describe(seen: Mapping[str, Any]) -> str:
    """`r0001-...`, or `r0001-... + canary r0002-... (step 2, weight 0.5)` during a rollout."""
    text = str(seen.get("release") or "(none)")
    live = seen.get("rollout")
    if isinstance(live, Mapping):
        text += (
            f" + {live.get('strategy')} {live.get('candidate')} "
            f"(step {int(live.get('step', 0)) + 1}, weight {live.get('weight')})"
        )
    return text
