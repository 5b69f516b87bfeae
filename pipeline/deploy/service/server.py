"""Start-up of `mlops serve`: settings, the app, one uvicorn worker.

One worker on purpose: the model thread, the micro-batcher, the request-id index and the
prediction log's single writer are per process, and the log's time order (which snapshots rely
on) holds only with one writer. Scale out with more targets or replicas, each with its own log
directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.deploy.service.secrets import resolve_token
from pipeline.params import ServeSettings

GRACEFUL_SHUTDOWN_S = 30
SWITCH_INTERVAL_S = 0.001


def configure_logging(level: str = "info") -> None:
    logger = logging.getLogger("mlops")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     mlops: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def tune_interpreter() -> None:
    """Process-wide settings for a latency-bound server with a model thread (the service's own
    process only, never a library import):

    * a 1 ms GIL switch interval (default 5 ms): the event loop waits for the GIL while the
      model and log threads run Python code; a shorter slice bounds that wait;
    * objects alive after start-up (modules, the model) are moved out of the garbage
      collector's view (`gc.freeze`), so full collections scan only request garbage.
    """
    import gc

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()


def build(
    settings: ServeSettings,
    root: Path,
    *,
    poll_seconds: float = 1.0,
    token: Any = None,
    only_release: str | None = None,
) -> Any:
    """The FastAPI app for one target (the token from the environment unless given);
    `only_release`: serve that release alone (`Desired.parse`)."""
    from pipeline.deploy.service.app import Service, create_app

    if token is None:
        token = resolve_token(settings.auth)
    service = Service(
        settings, root, token=token or None, poll_seconds=poll_seconds, only_release=only_release
    )
    if service.token is None:
        logging.getLogger("mlops.serve").warning(
            "no bearer token in $%s%s: POST /feedback answers 503 until one is set",
            settings.auth.token_env,
            f" or {settings.auth.token_file}" if settings.auth.token_file else "",
        )
    return create_app(service)


def uvicorn_config(app: Any, host: str, port: int, *, log_level: str = "info") -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        lifespan="on",
        access_log=False,  # the prediction log is the record; an access line per request costs
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )


def serve(
    settings: ServeSettings,
    root: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    poll_seconds: float = 1.0,
    log_level: str = "info",
    only_release: str | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; shutdown drains requests, the model thread and the logs."""
    import uvicorn

    configure_logging(log_level)
    tune_interpreter()
    app = build(settings, root, poll_seconds=poll_seconds, only_release=only_release)
    server = uvicorn.Server(
        uvicorn_config(
            app, host or settings.host, settings.port if port is None else port, log_level=log_level
        )
    )
    server.run()
