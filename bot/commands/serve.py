"""`netcheck serve [--port 3000] [--config PATH]`: run the Slack bot with its operational runtime.

Socket Mode when SLACK_APP_TOKEN is set (no public URL needed), else HTTP mode with Bolt's
/slack/events endpoint on --port. Registered by `bot/cli.py` through `add_parser`.

Around the Slack app this module wires `bot.ops.runtime.OpsRuntime`:
- /healthz, /readyz, /metrics on `ops.health_host:ops.health_port`;
- leader election through the `ops.lease_name` Lease: only the leader holds the Socket Mode
  connection, answers /slack/events and watches for node joins. In HTTP mode a standby runs
  nothing; it acks a signed slash command or click with a short "failing over, try again" answer
  (Slack does not retry those) and answers Events API deliveries with 503 + Retry-After (Slack
  retries them, and the Service may route the retry to the leader) — bot/slack/standby.py, and
  docs/deploy.md;
- metrics: the engine's `on_report` and the fix runner's `on_result` hooks count every check and
  fix outcome (bot/ops/metrics.py); `build_app` records every on-demand report in the fleet state
  (bot/fleet/state.py) the continuous watch, the App Home tab and the fleet series on /metrics share;
- the continuous watch (bot/watch/sweeper.py) on the leader when `watch.interval` is set: sweeps every
  node and posts regressions and recoveries to `watch.channel`; a replica that stops leading drops
  its fleet state and series (a standby's /metrics shows no stale node status);
- SIGTERM: stop taking commands, let running checks/fixes finish (bounded by
  `ops.shutdown_grace`), delete debug pods (`engine.aclose()`), release the Lease, stop health.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from bot.commands import EXIT_OK, EXIT_UNCHECKED, EXIT_USAGE, add_config_argument, fail, load_config
from bot.fleet import metrics as fleet_metrics
from bot.fleet.state import FleetState
from bot.ops import metrics
from bot.ops.engine_loop import EngineLoop
from bot.ops.readiness import cluster_ready, slack_web_ready, socket_mode_ready
from bot.ops.runtime import OpsRuntime
from bot.ops.settings import OpsSettings
from bot.slack.app import build_app, web_api_session
from bot.slack.http import events_app
from bot.slack.nodewatch import NodeWatcher
from bot.slack.settings import SlackSettings
from bot.slack.standby import StandbyAnswers
from bot.watch.settings import WatchSettings
from bot.watch.sweeper import Watcher
from probes.api import EngineAPI
from probes.errors import ClusterConflict, ClusterNotFound, ConfigError, ConfigMissing, NetcheckError
from probes.noderun import POD_TRANSPORT_PROBE_ID, TRANSPORT_PROBE_ID

if TYPE_CHECKING:
    from aiohttp import ClientSession, web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp

    from bot.config import Config
    from bot.slack.ports import NodeSource
    from bot.slack.runtime import Runtime
    from bot.wiring import Services

log = structlog.get_logger("netcheck.serve")

STANDBY_RETRY_AFTER_S = 2
"""Retry-After a standby sends with its 503 to Events API deliveries (about one election retry period)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set)")
    parser.add_argument("--port", type=int, default=3000, help="HTTP mode port for /slack/events")
    parser.add_argument(
        "--host", default="0.0.0.0", help="HTTP mode address (default: all, Slack must reach it)"
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)
    return parser


class LocalLeaseStore:
    """A Lease kept in this process, for an engine without a Kubernetes client (tests, embedders):
    the single replica always leads. Same contract as `KubernetesLeaseStore`."""

    def __init__(self) -> None:
        self._lease: dict[str, Any] | None = None
        self._version = 0

    async def get(self, name: str) -> dict[str, Any]:
        if self._lease is None:
            raise ClusterNotFound(f"lease {name} not found")
        return self._lease

    async def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._lease is not None:
            raise ClusterConflict(f"lease {name} exists")
        return self._store(body)

    async def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._lease is None:
            raise ClusterNotFound(f"lease {name} not found")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        metadata = {**body.get("metadata", {}), "resourceVersion": str(self._version)}
        self._lease = {**body, "metadata": metadata}
        return self._lease


def _engine_ready(engine: EngineAPI, timeout: float) -> Callable[[], Awaitable[bool]]:
    """Without a Lease store, the cluster is 'answering' when the engine can list node names."""

    async def check() -> bool:
        try:
            await asyncio.wait_for(engine.node_names(), timeout)
        except (NetcheckError, TimeoutError):
            return False
        return True

    return check


class _SlackSide:
    """What only the leader runs: the Socket Mode connection (or answering /slack/events), the
    node-join watch and the continuous watch's sweeps. Started/stopped by the leader elector's
    callbacks."""

    def __init__(self, app: AsyncApp, rt: Runtime, settings: SlackSettings,
                 source: NodeSource | None, sweeper: Watcher | None = None) -> None:
        self.app, self.rt, self.settings, self.source = app, rt, settings, source
        self.socket: AsyncSocketModeHandler | None = None
        self.watch: asyncio.Task[None] | None = None
        self.sweeper = sweeper
        self.sweeps: asyncio.Task[None] | None = None
        self.closed = False

    async def start(self) -> None:
        if self.closed:
            return
        if self.settings.app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            socket = AsyncSocketModeHandler(self.app, self.settings.app_token.get_secret_value())
            self.socket = socket
            await socket.connect_async()
            log.info("answering", mode="socket")
        else:
            log.info("answering", mode="http")
        if self.source is not None and self.settings.join_channel:
            watcher = NodeWatcher(self.rt, self.source, self.settings.join_channel)
            self.watch = asyncio.create_task(watcher.run(), name="node-watch")
        if self.sweeper is not None:
            self.rt.fleet.rebaseline()  # another leader may have posted while this one stood by
            self.sweeps = asyncio.create_task(self.sweeper.run(), name="watch-sweeps")

    async def stop(self) -> None:
        for task in (self.watch, self.sweeps):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.watch = self.sweeps = None
        if self.socket is not None:
            socket, self.socket = self.socket, None
            await socket.close_async()
        # a standby checks nothing: its /metrics must not go on showing the fleet as last seen (both
        # pods are scraped); becoming the leader again rebuilds the state with a sweep
        self.rt.fleet.forget(())
        log.info("standing_by")


async def serve(
    settings: SlackSettings,
    services: Services,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    ops: OpsSettings | None = None,
    watch: WatchSettings | None = None,
    fleet: FleetState | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then drain and clean up (see module docstring).

    `ops` None: health on a free loopback port (embedders and tests); `services.lease_store` None:
    this process is the only replica (a process-local Lease); `watch` None or without an interval:
    no continuous watch; `fleet` None: a fresh fleet state on the bot's metrics registry."""
    # the bot's Web API calls reuse its connections (bot/slack/app.py); closed last, after the checks
    # that finished during the drain posted through it
    async with web_api_session() as web_api:
        await _serve(settings, services, web_api, host=host, port=port, stop=stop, ops=ops, watch=watch,
                     fleet=fleet)


async def _serve(
    settings: SlackSettings,
    services: Services,
    web_api: ClientSession,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None,
    ops: OpsSettings | None,
    watch: WatchSettings | None,
    fleet: FleetState | None,
) -> None:
    ops = ops or OpsSettings(health_host="127.0.0.1", health_port=0)
    watch = watch or WatchSettings()
    engine, runner, lease_store = services.engine, services.runner, services.lease_store
    if watch.probes:
        _check_probe_ids(watch.probes, set(engine.registry.ids()))
    fleet = fleet or build_fleet(watch)
    engine.on_report.add(metrics.record_report)
    if runner is not None:
        runner.on_result.add(metrics.record_fix)
    app, rt = build_app(settings, engine, runner, probe_count=len(engine.registry.ids()),
                        fleet=fleet, watch=watch, session=web_api)
    sweeper = Watcher(rt, engine, fleet, watch) if watch.enabled else None
    slack = _SlackSide(app, rt, settings, services.node_source, sweeper)
    store = lease_store or LocalLeaseStore()
    if lease_store is None and not ops.leader_election:
        log.info("leader_election_off", note="this process always answers: run a single replica")
    ready_cluster = (
        cluster_ready(store, ops.lease_name) if lease_store is not None
        else _engine_ready(engine, ops.readiness_timeout)
    )
    runtime: OpsRuntime
    if settings.app_token:
        def is_leader() -> bool:
            return runtime.elector.is_leader

        ready_slack = socket_mode_ready(_SocketHandlerView(slack), rt.client, is_leader)
    else:
        ready_slack = slack_web_ready(rt.client)
    runtime = OpsRuntime(
        ops, lease_store=store, slack_ready=ready_slack, cluster_ready=ready_cluster,
        on_started_leading=slack.start, on_stopped_leading=slack.stop,
        tasks=rt.tasks,  # SIGTERM lets the listeners' checks and fixes finish (ops.shutdown_grace)
    )

    runtime.add_cleanup("delete debug pods and close the engine", engine.aclose)
    health_port = await runtime.start(install_signal_handlers=stop is None)
    web_runner = None
    standby = StandbyAnswers(settings.secret(), STANDBY_RETRY_AFTER_S)
    if not settings.app_token:
        web_runner = await _start_http(app, settings, runtime, standby, host, port)
    log.info("serving", mode="socket" if settings.app_token else "http", host=host, port=port,
             health_port=health_port, identity=runtime.elector.identity)
    relay = asyncio.create_task(_relay(stop, runtime)) if stop is not None else None

    await runtime.shutdown.requested.wait()
    # Stop taking new commands first, then let running checks and fixes finish (bounded).
    slack.closed = True
    await slack.stop()
    if web_runner is not None:
        await web_runner.cleanup()
    await standby.aclose()
    # then running checks and fixes finish (bounded), then the cleanups: engine.aclose, election
    # stop, Lease release
    failed = await runtime.run_until_shutdown()
    if hasattr(store, "aclose"):
        await store.aclose()  # its API session, after the Lease was released through it
    source_close = getattr(services.node_source, "aclose", None)
    if source_close is not None:
        await source_close()  # the node watch's own API session (bot/wiring.py)
    if relay is not None:
        relay.cancel()
    if failed:
        log.warning("shutdown_cleanups_failed", failed=failed)


class _SocketHandlerView:
    """`socket_mode_ready` wants `handler.client.is_connected()`; the handler changes per leadership."""

    def __init__(self, slack: _SlackSide) -> None:
        self._slack = slack

    @property
    def client(self) -> Any:
        return self

    async def is_connected(self) -> bool:
        socket = self._slack.socket
        return socket is not None and await socket.client.is_connected()


def build_fleet(watch: WatchSettings) -> FleetState:
    """The fleet state for these watch settings, its series on the bot's /metrics registry."""
    return FleetState(
        agree=watch.agree, watched=frozenset(watch.probes) if watch.probes else None,
        always=frozenset({TRANSPORT_PROBE_ID, POD_TRANSPORT_PROBE_ID}),  # a node out of reach counts
        metrics=fleet_metrics.for_registry(metrics.METRICS.registry),
        regressions=deque(maxlen=watch.regressions_kept),
    )


def _check_probe_ids(wanted: list[str], known: set[str]) -> None:
    unknown = [probe for probe in wanted if probe not in known]
    if unknown:
        raise ConfigError(f"config error: watch.probes: unknown probe {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known))})")


async def _relay(stop: asyncio.Event, runtime: OpsRuntime) -> None:
    await stop.wait()
    runtime.shutdown.request()


async def _start_http(app: AsyncApp, settings: SlackSettings, runtime: OpsRuntime,
                      standby: StandbyAnswers, host: str, port: int) -> web.AppRunner:
    """Bolt's /slack/events behind a gate: a standby runs nothing and answers as `standby` says."""
    from aiohttp import web

    @web.middleware
    async def leader_only(request: web.Request, handler: Any) -> web.StreamResponse:
        if not runtime.elector.is_leader:
            return await standby.answer(request)
        return await handler(request)

    web_app = events_app(app, settings, path="/slack/events")  # authenticates before Bolt parses
    web_app.middlewares.append(leader_only)
    web_runner = web.AppRunner(web_app)
    await web_runner.setup()
    await web.TCPSite(web_runner, host, port).start()
    return web_runner


async def serve_with_engine_loop(config: Config, *, host: str, port: int,
                                 engine_factory: Callable[[Config], EngineAPI] | None = None,
                                 stop: asyncio.Event | None = None) -> None:
    """`serve` with the engine and the fix runner on an event loop in a thread of their own
    (bot/ops/engine_loop.py) and Slack on this one, so an ack never waits behind a check's I/O.
    The engine loop stops after serve's cleanups closed the engine on it, also when serve fails."""
    from bot import wiring

    engine_loop = EngineLoop(start_timeout=config.ops.engine_loop_timeout,
                             stop_timeout=config.ops.engine_loop_timeout,
                             unwind_timeout=config.ops.engine_unwind_timeout, nice=config.ops.engine_nice)
    wiring.import_for_serving()
    await engine_loop.start()
    services: Services | None = None
    try:
        services = wiring.build_services(config, engine_factory=engine_factory, engine_loop=engine_loop)
        await serve(config.slack, services, host=host, port=port, stop=stop, ops=config.ops,
                    watch=config.watch)
    finally:
        if services is not None:
            await services.engine.aclose()  # nothing when serve's cleanup closed it already
        await engine_loop.stop()


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args)
        asyncio.run(serve_with_engine_loop(config, host=args.host, port=args.port,
                                           engine_factory=getattr(args, "engine_factory", None)))
    except NetcheckError as exc:
        return fail("serve", str(exc), EXIT_UNCHECKED if isinstance(exc, ConfigMissing) else EXIT_USAGE)
    return EXIT_OK
