"""The small HTTP server Kubernetes probes and Prometheus scrape: /healthz, /readyz, /metrics.

Started by `netcheck serve` next to the Slack app. /healthz answers 200 while the event loop runs
(liveness: a wedged loop cannot answer). /readyz runs the async checks given by the caller — the
Slack connection is up, the cluster API answers, leader election is possible — each bounded by
`readiness_timeout`, and answers 503 naming what failed (a check raising `NotReady` says why), so a
replica that lost Slack or the API is taken out of rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.ops.metrics import METRICS, Metrics
from bot.ops.settings import OpsSettings

ReadinessCheck = Callable[[], Awaitable[bool]]
log = structlog.get_logger(__name__)


class NotReady(Exception):  # noqa: N818 (an answer, not a failure of the check itself)
    """Raised by a readiness check to say why it is not ready (one line, shown on /readyz)."""


class HealthServer:
    def __init__(
        self,
        *,
        slack_ready: ReadinessCheck,
        cluster_ready: ReadinessCheck,
        settings: OpsSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings or OpsSettings()
        self.metrics = metrics or METRICS
        self._checks: dict[str, ReadinessCheck] = {"slack": slack_ready, "cluster": cluster_ready}
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen (port 0 picks a free one) and return the bound port."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            host if host is not None else self.settings.health_host,
            port if port is not None else self.settings.health_port,
        )
        await site.start()
        server = site._server  # aiohttp exposes the bound sockets only here
        assert isinstance(server, asyncio.Server) and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _check(self, name: str, check: ReadinessCheck) -> str | None:
        """None when ready, else why not (one line)."""
        try:
            ready = await asyncio.wait_for(check(), timeout=self.settings.readiness_timeout)
        except TimeoutError:
            return f"{name}: no answer within {self.settings.readiness_timeout:g}s"
        except NotReady as why:
            return f"{name}: {why}"
        except Exception as exc:  # a readiness check must report, never crash the probe endpoint
            return f"{name}: {type(exc).__name__}: {exc}"
        return None if ready else f"{name}: not ready"

    async def _readyz(self, _request: web.Request) -> web.Response:
        results = await asyncio.gather(*(self._check(n, c) for n, c in self._checks.items()))
        problems = [r for r in results if r is not None]
        if problems:
            log.warning("not_ready", problems=problems)
            return web.Response(status=503, text="\n".join(problems) + "\n")
        return web.Response(text="ready\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
