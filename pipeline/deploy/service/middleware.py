"""ASGI middleware of the service: every HTTP request counted and timed for /metrics, by the
endpoint names of `metrics.ENDPOINTS`. The status is read from the response's start message,
so a request that fails before one is sent is counted as 500.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.deploy.service.metrics import ENDPOINTS, ServiceMetrics


class MetricsMiddleware:
    """Counts every HTTP request by endpoint and status and times it (pure ASGI: Starlette's
    BaseHTTPMiddleware would add a task and a stream per request)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            endpoint = ENDPOINTS.get(scope["path"], "other")
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)
