"""Following `deploy/<target>.json`: parse the desired state, load and verify the bundle it
names, and swap the served model atomically.

The served model is one reference (`ReleaseSlot.current`) to an immutable `Served`. A request
reads it once and keeps that object until it is answered, so a swap (one assignment) never
fails a request in flight: the old model stays alive for as long as a request holds it. The
watcher thread polls the file's stat (and, when that changed, its content) every
`poll_seconds`, which works everywhere (inotify does not see every editor's rename on every
file system, and a poll of one stat per second costs nothing). Loading happens in the watcher
thread, never on the event loop.

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
class Desired:
    """What `deploy/<target>.json` declares: a release (and its bundle) or none."""

    release: str | None
    sha256: str | None = None
    path: Path | None = None

    @property
    def bundle_id(self) -> str | None:
        return None if self.sha256 is None else bundle_id(self.sha256)

    @classmethod
    def parse(cls, content: str | bytes, root: Path, target: str, source: str) -> Desired:
        """Read a deploy file's content with the one release-record parser every reader uses
        (`parse_record`: ids matched whole, bundle.path must be bundles/<bundle id>)."""
        record = parse_record(content, source, target)
        if record.release is None:
            return cls(None)
        return cls(
            record.release, record.bundle_sha256, root / released_bundle(str(record.bundle_id))
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
    """The served model (one reference, swapped atomically) and what the deploy file wants."""

    target: str
    current: Served | None = None
    desired: Desired | None = None
    error: str | None = None
    on_change: list[Callable[[ReleaseSlot], None]] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        want = self.desired
        if want is None:
            return False
        have = self.current
        if want.release is None:
            return have is None
        return have is not None and have.release == want.release and have.digest == want.sha256

    def swap(self, served: Served | None) -> None:
        self.current = served  # the one assignment requests observe
        for callback in self.on_change:
            callback(self)

    def version(self) -> dict[str, Any]:
        """What GET /version answers (and `mlops status` reads): exactly these keys."""
        served = self.current
        return {
            "release": None if served is None else served.release,
            "bundle": None if served is None else served.version(),
            "target": self.target,
        }


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
    ) -> None:
        self.path = path
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
        return Desired.parse(content, self.root, self.slot.target, str(self.path))

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
        current = self.slot.current
        if desired.release is None:
            self.slot.error = None
            if current is None:
                return False
            LOG.warning("deploy file declares no release: unloading %s", current.release)
            self.slot.swap(None)
            return True
        assert desired.sha256 is not None
        if current is not None and (current.release, current.digest) == (
            desired.release,
            desired.sha256,
        ):
            self.slot.error = None
            self.slot.swap(current)  # refresh listeners (in sync again)
            return False
        key = (desired.release, desired.sha256)
        served = self._cache.get(key)
        if served is None:
            LOG.info("loading release %s (bundle %s)", desired.release, desired.bundle_id)
            try:
                served = self.loader(desired, self.threads)
            except Exception as exc:  # noqa: BLE001 - a bad bundle must never stop the service
                message = exc.render() if isinstance(exc, ArtifactError) else repr(exc)
                self._fail(
                    f"release {desired.release} refused: {message}; "
                    + (
                        f"still serving {current.release}"
                        if current is not None
                        else "serving nothing"
                    )
                )
                return False
        if current is not None:
            self._cache[(current.release, current.digest)] = current
        self._cache.pop(key, None)
        while len(self._cache) > CACHED_RELEASES:
            self._cache.popitem(last=False)
        self.slot.error = None
        self.slot.swap(served)
        LOG.info("serving release %s (bundle %s)", served.release, served.bundle_id)
        return True

    def _fail(self, message: str) -> None:
        if message != self.slot.error:
            LOG.error("%s", message)
            if self.on_failure is not None:
                self.on_failure(message)
        self.slot.error = message
        self._failed_polls = 0
        self.slot.swap(self.slot.current)  # listeners see the error (in_sync, health)
