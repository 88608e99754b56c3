"""Build the real `Engine` from the configuration: the one place transports are assembled.

Used by `netcheck check`, `diff` and `fix` (`build_engine`, `build_fix_runner`) and `netcheck serve`
(`build_services`: the engine, the fix runner, the node-join source and the leader Lease store).
Tests and embedders inject their own `Transports` through `build_engine(config, transports=...)` —
the documented seam for running the engine without SSH or a cluster — or a whole engine through
`engine_factory` (`bot.cli.main`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Config
from probes.api import EngineAPI
from probes.engine import Engine, Transports
from probes.facts import ClusterFacts, NodeFacts
from probes.registry import Registry, default_registry
from probes.transports.access import NodeAccess, NodeAccessMode
from probes.transports.cluster import ClusterSettings, KubeCluster, check_kubeconfig
from probes.transports.discovery import discover
from probes.transports.hostpod import HostPods
from probes.transports.leases import KubernetesLeaseStore
from probes.transports.owner import process_owner
from probes.transports.pod import DebugPods
from probes.transports.ssh import SSHPool, preload_client

if TYPE_CHECKING:  # imported where they are built: `netcheck check` needs none (start-up time)
    from bot.ops.engine_loop import EngineLoop
    from bot.ops.leader import LeaseStore
    from bot.slack.nodesource import ClusterNodeSource
    from bot.slack.ports import FixRunner as FixRunnerAPI
    from bot.slack.ports import NodeSource
    from fixes.runner import FixRunner


SERVE_IMPORTS = ("asyncssh", "kubernetes.aio.client", "kubernetes.aio.config", "kubernetes.aio.stream",
                 "kubernetes.aio.watch", "PIL.PngImagePlugin")
"""What the engine and the pictures import at their first use (lazily: `netcheck check` starts sooner
without what it does not use), imported by `netcheck serve` before it answers: an import holds the
GIL for its whole run, so during the first sweep it would hold up every ack (docs/event-loops.md)."""


def import_for_serving() -> None:
    for name in SERVE_IMPORTS:
        importlib.import_module(name)


def build_transports(config: Config) -> Transports:
    """Node access (SSH pool or host pods), debug pods and the cluster client (the kubernetes package's
    asyncio client, loaded at the first request: a bad kubeconfig is a ConfigError then). A kubeconfig
    that does not exist at all is `ConfigMissing` here, before anything (a fix's plan) starts."""
    check_kubeconfig(config.cluster_settings())
    ssh_maybe = config.node_access != NodeAccessMode.POD or bool(config.node_access_overrides)
    cluster = KubeCluster(config.cluster_settings(), on_client=preload_client if ssh_maybe else None)

    async def discover_facts() -> ClusterFacts:
        return await discover(cluster, config.cluster)

    async def discover_early(on_nodes: Callable[[Sequence[NodeFacts]], None]) -> ClusterFacts:
        return await discover(cluster, config.cluster, on_nodes=on_nodes)

    async def close() -> None:
        await cluster.aclose()

    # node_access: SSH, or host pods through the API (read-only for probes, privileged for fixes)
    shells = NodeAccess(
        config.node_access, config.node_access_overrides, SSHPool(config.ssh),
        read_only=HostPods(cluster, config.debug_pod, config.host_pod, privileged=False),
        privileged=HostPods(cluster, config.debug_pod, config.host_pod, privileged=True),
    )
    return Transports(
        cluster=cluster,
        discover=discover_facts,
        discover_early=discover_early,
        shells=shells,
        pods=DebugPods(cluster, config.debug_pod),
        close=close,
    )


def build_engine(
    config: Config, *, transports: Transports | None = None, registry: Registry | None = None
) -> Engine:
    """The engine with every catalog probe registered (import of probes.catalog registers them)."""
    if registry is None:
        import probes.catalog  # noqa: F401  (registers the probes on default_registry)

        registry = default_registry
    return Engine(
        transports=transports or build_transports(config),
        settings=config.probes,
        registry=registry,
    )


def build_fix_runner(config: Config, engine: EngineAPI) -> FixRunner:
    """The fix runner over the same engine (and so the same transports) the checks use, serialized
    per node across processes by the node's fix Lease in the bot's namespace (none without a
    Kubernetes client: an injected `Transports`)."""
    from fixes.lock import ClusterFixLock
    from fixes.runner import FixRunner

    node_lock = None
    if isinstance(engine.cluster, KubeCluster):
        store = KubernetesLeaseStore(engine.cluster, config.ops.lease_namespace,
                                     request_timeout=config.cluster_settings().request_timeout)
        node_lock = ClusterFixLock(store, namespace=config.ops.lease_namespace, owner=process_owner(),
                                   settings=config.fixes)
    return FixRunner(engine, settings=config.fixes, node_lock=node_lock)


def build_node_source(engine: EngineAPI, *, own_client: ClusterSettings | None = None,
                      ) -> ClusterNodeSource | None:
    """Node-join source over the engine's cluster client, or over a client of its own with the
    `own_client` settings: `netcheck serve` runs the watch on the bot's loop and the engine's client
    lives on the engine's (bot/ops/engine_loop.py). None when the engine has no Kubernetes client (an
    injected `Transports`): nothing to watch."""
    from bot.slack.nodesource import ClusterNodeSource

    if not isinstance(engine.cluster, KubeCluster):
        return None
    return ClusterNodeSource(KubeCluster(own_client) if own_client is not None else engine.cluster)


def build_lease_store(config: Config, engine: EngineAPI) -> KubernetesLeaseStore | None:
    """The leader-election Lease store on the engine's API client (same credentials and timeout);
    None without a Kubernetes client or with `ops.leader_election: false` — the caller then runs as
    the only replica."""
    if not config.ops.leader_election or not isinstance(engine.cluster, KubeCluster):
        return None
    # A client of its own (same settings): shutdown closes the engine, and so its client, before the
    # Lease is released; and it is used on the bot's loop, the engine's client on the engine's.
    return KubernetesLeaseStore(
        KubeCluster(config.cluster_settings()), config.ops.lease_namespace,
        request_timeout=config.cluster_settings().request_timeout,
    )


@dataclass(frozen=True)
class Services:
    """What `netcheck serve` runs on, built once from the configuration (`build_services`)."""

    engine: EngineAPI
    runner: FixRunnerAPI | None
    """None: fixes are not offered (embedders)."""
    node_source: NodeSource | None = None
    """None: no node-join watch (no Kubernetes client to watch with)."""
    lease_store: LeaseStore | None = None
    """None: this process is the only replica (a process-local Lease)."""


def build_services(
    config: Config, *, engine_factory: Callable[[Config], EngineAPI] | None = None,
    engine_loop: EngineLoop | None = None,
) -> Services:
    """The engine (`engine_factory`, else `build_engine`) and everything serve builds on it.

    `engine_loop` (started): the engine and the fix runner run there, the bot talks to them through
    `bot.ops.engine_bridge` and keeps its own loop for Slack (`netcheck serve`); the node-join source
    and the Lease store stay on the caller's loop with clients of their own."""
    engine = (engine_factory or build_engine)(config)
    runner: FixRunnerAPI = build_fix_runner(config, engine)
    node_source = build_node_source(engine, own_client=config.cluster_settings())
    lease_store = build_lease_store(config, engine)
    if engine_loop is not None:
        from bot.ops.engine_bridge import ThreadedEngine, ThreadedFixRunner

        engine, runner = ThreadedEngine(engine, engine_loop), ThreadedFixRunner(runner, engine_loop)
    return Services(engine=engine, runner=runner, node_source=node_source, lease_store=lease_store)
