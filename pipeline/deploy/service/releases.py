"""Following `deploy/<target>.json`: parse the desired state, load and verify the bundle it
names, and swap the served model atomically.

The served model is one reference (`ReleaseSlot.current`) to an immutable `Served`. A request
reads it once and keeps that object until it is answered, so a swap (one assignment) never
fails a request in flight: the old model stays alive for as long as a request holds it. The
watcher thread polls the file's stat (and, when that changed, its content) every
`poll_seconds`, which works everywhere (inotify does not see every editor's rename on every
file system, and a poll of one stat per second costs nothing). Loading happens in the watcher
thread, never on the event loop.

During a rollout (`rollout` in the record, `pipeline/release_record.py`) the slot holds the
stable release and a `Routing` beside it: the candidate's loaded bundle, the strategy, step,
weight and routing key, swapped together with the stable in one assignment, so a request reads
one consistent pair. A model already loaded is never loaded twice: the candidate of a promoted
rollout becomes the stable without a reload, and at most `CACHED_RELEASES` models are kept
besides the ones serving (one fewer while a candidate is loaded), so memory stays bounded by
three bundles. A candidate that fails to load leaves the stable release serving everything,
with the error reported, and is retried like any refused release.

Refusal is the safe default: a bundle whose digest differs from the one in the deploy file, a
bundle that fails to load or to score one record, or an unreadable deploy file leaves the
current model serving; the error is logged and shown by /health and /metrics, and the load is
retried every `RETRY_POLLS` polls (e.g. after `dvc pull` fetched the files).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bundle_format import bundle_id
from pipeline.deploy.bundle import Bundle, load_bundle
from pipeline.errors import ArtifactError
from pipeline.paths import release_path, released_bundle
from pipeline.release_record import parse_record

LOG = logging.getLogger("mlops.serve")
RETRY_POLLS = 10
CACHED_RELEASES = 2  # previously served models kept in memory: a rollback swaps back at once
# `git checkout`/`git merge` (what `mlops sync` runs) rewrite the deploy file in place: for a
# moment it is missing or empty. A read that fails is retried for up to half a second.
SETTLE_SECONDS = 0.05
SETTLE_READS = 10


def deploy_file(root: Path, target: str) -> Path:
    return root / release_path(target)


@dataclass(frozen=True)
class DesiredRollout:
    """The running rollout a deploy file declares: the candidate and where routing is."""

    strategy: str  # shadow | canary
    step: int
    weight: float
    key: str | None
    candidate: Desired


@dataclass(frozen=True)
class Desired:
    """What `deploy/<target>.json` declares: a release (and its bundle) or none, and a running
    rollout beside it, if any."""

    release: str | None
    sha256: str | None = None
    path: Path | None = None
    rollout: DesiredRollout | None = None

    @property
    def bundle_id(self) -> str | None:
        return None if self.sha256 is None else bundle_id(self.sha256)

    @classmethod
    def parse(
        cls, content: str | bytes, root: Path, target: str, source: str, *, only: str | None = None
    ) -> Desired:
        """Read a deploy file's content with the one release-record parser every reader uses
        (`parse_record`: ids matched whole, bundle.path must be bundles/<bundle id>).

        `only` names the one release this process serves, whatever the record's rollout says:
        a pod of a Kubernetes Deployment or Argo Rollout (MLOPS_RELEASE), where the cluster
        splits traffic between the stable and the candidate pods. Routing again inside each pod
        would split the candidate's share a second time. A record that declares neither as the
        release nor as the running rollout's candidate is refused (ArtifactError)."""
        record = parse_record(content, source, target)
        if only is not None:
            running = record.running_rollout
            for one in (record, None if running is None else running.candidate):
                if one is not None and one.release == only:
                    return cls(
                        one.release, one.bundle_sha256, root / released_bundle(str(one.bundle_id))
                    )
            raise ArtifactError(
                f"{source}: declares no release {only} (this process serves only that one)"
            )
        if record.release is None:
            return cls(None)
        running = record.running_rollout
        rollout = None
        if running is not None:
            candidate = running.candidate
            rollout = DesiredRollout(
                running.strategy,
                running.step,
                running.weight,
                running.key,
                cls(
                    candidate.release,
                    candidate.bundle_sha256,
                    root / released_bundle(str(candidate.bundle_id)),
                ),
            )
        return cls(
            record.release,
            record.bundle_sha256,
            root / released_bundle(str(record.bundle_id)),
            rollout,
        )


@dataclass(frozen=True)
class Served:
    """A loaded, verified bundle and the release it serves. Immutable: swapping replaces it."""

    release: str | None
    bundle: Bundle
    classifier: bool
    classes: tuple[str, ...] | None  # the model's classes as text (classification)

    @property
    def digest(self) -> str:
        return self.bundle.digest

    @property
    def bundle_id(self) -> str:
        return self.bundle.id

    def version(self) -> dict[str, Any]:
        return {"id": self.bundle.id, "sha256": self.bundle.digest}


@dataclass(frozen=True)
class Routing:
    """A running rollout as the service applies it (immutable: a step swaps a new one in)."""

    strategy: str  # shadow | canary
    step: int
    weight: float  # canary: the candidate's share; shadow: 0 (it answers nobody)
    key: str | None  # canary: the record field hashed to route; None: the request id
    candidate: Served

    @property
    def canary(self) -> bool:
        return self.strategy == "canary"

    def summary(self, *, bundle: bool = False) -> dict[str, Any]:
        """The rollout as `/health` shows it (and `/version`, with the candidate's bundle)."""
        shown: dict[str, Any] = {
            "strategy": self.strategy,
            "step": self.step,
            "weight": self.weight,
            "candidate": self.candidate.release,
        }
        if bundle:
            shown["bundle"] = self.candidate.version()
        return shown

    def tag(self, arm: str) -> dict[str, Any]:
        """What a log entry records of the rollout that scored it (`arm`: stable | candidate)."""
        return {"candidate": self.candidate.release, "step": self.step, "arm": arm}

    def same(self, desired: DesiredRollout) -> bool:
        want = desired.candidate
        return (self.strategy, self.step, self.weight, self.key) == (
            desired.strategy,
            desired.step,
            desired.weight,
            desired.key,
        ) and (self.candidate.release, self.candidate.digest) == (want.release, want.sha256)

    def to_candidate(self, value: Any) -> bool:
        """Canary routing: whether the record whose key (or request id) is `value` goes to the
        candidate. A hash of the value, so the same caller always lands on the same side, and a
        caller on the candidate stays there as the weight rises (`route_point`)."""
        return self.canary and route_point(value) < self.weight


def route_point(value: Any) -> float:
    """A value's fixed point in [0, 1): the first 8 bytes of the sha256 of its text (a string
    as it is, anything else as canonical JSON), so routing is the same in every process."""
    import hashlib
    import json

    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def load_served(desired: Desired, threads: int) -> Served:
    """Load and verify the bundle `desired` names, and score one record with it: a bundle that
    cannot predict is refused before it serves anything."""
    if desired.path is None or desired.sha256 is None:
        raise ArtifactError("no bundle to load")
    if not desired.path.is_dir():
        raise ArtifactError(
            f"{desired.path}: bundle directory does not exist",
            hint="fetch it with `dvc pull` (released bundles live in the DVC cache/remote)",
        )
    bundle = load_bundle(desired.path, desired.sha256)
    task = bundle.signature.task
    classes = None
    if task == "classification":
        classes = tuple(str(c) for c in getattr(bundle.model, "classes_", ()))
    served = Served(desired.release, bundle, task == "classification", classes)
    with limit_threads(threads):
        warm_up(served)
    return served


def warm_up(served: Served) -> None:
    """Predict one typical record (first loads, caches, and proves the model and its signature
    fit together)."""
    sig = served.bundle.signature
    checked = sig.check([typical_record(sig)])
    if not checked.ok:
        raise ArtifactError(
            f"{served.bundle.path}: the signature refuses its own typical record: "
            f"{checked.errors[0]['message']}"
        )
    frame = sig.frame(checked.rows)
    try:
        served.bundle.model.predict(frame)
        if served.classifier:
            served.bundle.model.predict_proba(frame)
    except Exception as exc:  # any failure of a foreign model refuses it
        raise ArtifactError(f"{served.bundle.path}: the model fails to predict: {exc}") from exc


def typical_record(sig: Any) -> dict[str, Any]:
    """A record inside what training saw: mid-range numbers, the first seen category."""
    record: dict[str, Any] = {}
    for spec in sig.fields:
        if spec.type in ("float", "int"):
            lo = spec.observed_min if spec.observed_min is not None else spec.min
            hi = spec.observed_max if spec.observed_max is not None else spec.max
            value = 0.0 if lo is None or hi is None else (lo + hi) / 2
            if lo is not None and hi is None:
                value = lo
            elif hi is not None and lo is None:
                value = hi
            record[spec.name] = round(value) if spec.type == "int" else value
        elif spec.type == "datetime":  # a moment training saw (canonical ISO text)
            seen = spec.observed_min or spec.min or "2020-01-01T00:00:00"
            record[spec.name] = None if spec.nullable else seen
        else:
            seen = spec.observed_categories or spec.categories or ()
            record[spec.name] = seen[0] if seen else None
    return record


@contextlib.contextmanager
def limit_threads(threads: int) -> Any:
    """Limit OpenMP/BLAS threads of the calling thread (OpenMP limits are per thread)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


@dataclass
class ReleaseSlot:
    """The served model and the rollout beside it (one reference to the pair, swapped
    atomically) and what the deploy file wants."""

    target: str
    state: tuple[Served | None, Routing | None] = (None, None)
    desired: Desired | None = None
    error: str | None = None
    on_change: list[Callable[[ReleaseSlot], None]] = field(default_factory=list)

    @property
    def current(self) -> Served | None:
        """The stable release (every request's, outside a canary's share)."""
        return self.state[0]

    @property
    def rollout(self) -> Routing | None:
        return self.state[1]

    @property
    def in_sync(self) -> bool:
        want = self.desired
        if want is None:
            return False
        have, routing = self.state
        if want.release is None:
            return have is None
        if want.rollout is None:
            stable_rollout = routing is None
        else:
            stable_rollout = routing is not None and routing.same(want.rollout)
        return (
            have is not None
            and have.release == want.release
            and have.digest == want.sha256
            and stable_rollout
        )

    def swap(self, served: Served | None, routing: Routing | None = None) -> None:
        self.state = (served, routing)  # the one assignment requests observe
        for callback in self.on_change:
            callback(self)

    def version(self) -> dict[str, Any]:
        """What GET /version answers (and `mlops status` and `mlops sync` read): these keys,
        and `rollout` while one runs."""
        served, routing = self.state
        answer: dict[str, Any] = {
            "release": None if served is None else served.release,
            "bundle": None if served is None else served.version(),
            "target": self.target,
        }
        if routing is not None:
            answer["rollout"] = routing.summary(bundle=True)
        return answer


class ReleaseWatcher:
    """Polls `deploy/<target>.json` and makes the slot follow it (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        root: Path,
        slot: ReleaseSlot,
        *,
        threads: int,
        poll_seconds: float = 1.0,
        on_failure: Callable[[str], None] | None = None,
        loader: Callable[[Desired, int], Served] = load_served,
        only: str | None = None,
    ) -> None:
        self.path = path
        self.only = only  # serve this release alone (Desired.parse)
        self.root = root
        self.slot = slot
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.on_failure = on_failure
        self.loader = loader
        self._stat: tuple[int, int, int] | None = None
        self._content: bytes | None = None
        self._failed_polls = 0
        self._cache: OrderedDict[tuple[str | None, str], Served] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one check at a time (start-up check vs the thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlops-release-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise
                LOG.exception("release watcher: unexpected error (still watching)")

    def check(self) -> bool:
        """One poll; True when the served model changed."""
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        retry = self.slot.error is not None and self._failed_polls >= RETRY_POLLS
        try:
            st = self._settled(self.path.stat)
        except OSError as exc:
            self._fail(
                f"{self.path}: cannot read the deploy file ({exc.strerror}); "
                "keeping the current model"
            )
            return False
        stat = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stat == self._stat and not retry:
            self._failed_polls += self.slot.error is not None
            return False
        self._stat = stat
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            self._fail(f"{self.path}: cannot read the deploy file ({exc.strerror})")
            return False
        if content == self._content and not retry:
            return False
        try:
            self._parse(content)
        except ArtifactError:
            content = self._settled_content(content)
        self._content = content
        self._failed_polls = 0
        try:
            desired = self._parse(content)
        except ArtifactError as exc:  # not JSON, or not a release record
            self._fail(f"{exc}; keeping the current model")
            return False
        self.slot.desired = desired
        return self._follow(desired)

    def _parse(self, content: bytes) -> Desired:
        return Desired.parse(content, self.root, self.slot.target, str(self.path), only=self.only)

    def _settled(self, read: Callable[[], Any]) -> Any:
        """`read()`, retried while it fails: the file may be mid-rewrite (see SETTLE_SECONDS)."""
        for _ in range(SETTLE_READS):
            try:
                return read()
            except OSError:
                self._stop.wait(SETTLE_SECONDS)
        return read()

    def _settled_content(self, content: bytes) -> bytes:
        """The deploy file's bytes, read again every SETTLE_SECONDS while they do not parse
        (starting from `content`): a record being rewritten in place is judged once whole,
        and only a record that stays broken for SETTLE_READS reads is reported."""
        for _ in range(SETTLE_READS):
            self._stop.wait(SETTLE_SECONDS)
            try:
                content = self.path.read_bytes()
                self._parse(content)
            except (OSError, ArtifactError):
                continue
            break
        return content

    def _follow(self, desired: Desired) -> bool:
        current, routing = self.slot.state
        if desired.release is None:
            self.slot.error = None
            if current is None:
                return False
            LOG.warning("deploy file declares no release: unloading %s", current.release)
            self.slot.swap(None)
            return True
        assert desired.sha256 is not None
        loaded = {
            (s.release, s.digest): s
            for s in (current, None if routing is None else routing.candidate)
            if s is not None
        }
        stable, problem = self._obtain(desired, loaded)
        if stable is None:
            self._fail(
                f"release {desired.release} refused: {problem}; "
                + (f"still serving {current.release}" if current is not None else "serving nothing")
            )
            return False
        new_routing, error = None, None
        want = desired.rollout
        if want is not None:
            if routing is not None and routing.same(want) and stable is current:
                new_routing = routing
            else:
                candidate, problem = self._obtain(want.candidate, loaded)
                if candidate is None:
                    error = (
                        f"rollout candidate {want.candidate.release} refused: {problem}; "
                        f"{stable.release} serves every request"
                    )
                else:
                    new_routing = Routing(
                        want.strategy, want.step, want.weight, want.key, candidate
                    )
        if stable is current and new_routing is routing:
            if error is not None:
                self._fail(error)
                return False
            self.slot.error = None
            self.slot.swap(current, routing)  # refresh listeners (in sync again)
            return False
        self._keep(loaded, stable, new_routing)
        self.slot.swap(stable, new_routing)
        if error is not None:
            self._fail(error)
        else:
            self.slot.error = None
        LOG.info(
            "serving release %s (bundle %s)%s",
            stable.release,
            stable.bundle_id,
            ""
            if new_routing is None
            else f"; {new_routing.strategy} rollout of {new_routing.candidate.release} "
            f"at step {new_routing.step} (weight {new_routing.weight})",
        )
        return True

    def _obtain(
        self, desired: Desired, loaded: dict[tuple[str | None, str], Served]
    ) -> tuple[Served | None, str | None]:
        """The loaded model `desired` names (already serving, cached, or loaded now), or None
        and why it was refused."""
        key = (desired.release, str(desired.sha256))
        served = loaded.get(key) or self._cache.get(key)
        if served is not None:
            return served, None
        LOG.info("loading release %s (bundle %s)", desired.release, desired.bundle_id)
        try:
            served = self.loader(desired, self.threads)
        except Exception as exc:  # noqa: BLE001 - a bad bundle must never stop the service
            return None, exc.render() if isinstance(exc, ArtifactError) else repr(exc)
        loaded[key] = served
        return served, None

    def _keep(
        self,
        loaded: dict[tuple[str | None, str], Served],
        stable: Served,
        routing: Routing | None,
    ) -> None:
        """Cache what no longer serves (newest last), bounded: at most CACHED_RELEASES models
        besides the serving ones, one fewer while a candidate is loaded."""
        serving = {id(stable), id(routing.candidate) if routing is not None else 0}
        for key, served in loaded.items():
            if id(served) not in serving:
                self._cache.pop(key, None)
                self._cache[key] = served
        for key in [k for k, v in self._cache.items() if id(v) in serving]:
            del self._cache[key]
        limit = CACHED_RELEASES - (routing is not None)
        while len(self._cache) > limit:
            self._cache.popitem(last=False)

    def _fail(self, message: str) -> None:
        if message != self.slot.error:
            LOG.error("%s", message)
            if self.on_failure is not None:
                self.on_failure(message)
        self.slot.error = message
        self._failed_polls = 0
        self.slot.swap(*self.slot.state)  # listeners see the error (in_sync, health)
