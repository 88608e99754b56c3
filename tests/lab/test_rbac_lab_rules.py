"""Every shipped RBAC rule is needed by a real netcheck operation, and its absence is reported clearly.

One in-process API stand-in (HTTPS, the kubelet stand-in for exec/log) enforces the rules of
deploy/kubernetes/rbac.yaml for the bot's ServiceAccount token; netcheck's real transports
(KubeCluster, DebugPods with exec and logs, ClusterNodeSource's watch, KubernetesLeaseStore through
LeaderElector, the fix runner's per-node ClusterFixLock, discovery) run the operations the bot
performs. Covers:
- with the shipped rules every operation succeeds (no 403 anywhere);
- for each rule (parametrized), with only that rule removed, at least one operation fails with a 403
  whose message netcheck surfaces as one short line naming a verb and a resource of the removed rule
The rules are swapped on the running stand-in's authorizer, so all cases share one server.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from kubernetes import client

from bot.ops.leader import LeaderElector
from bot.ops.settings import OpsSettings
from bot.slack.nodesource import ClusterNodeSource
from fixes.lock import ClusterFixLock
from fixes.settings import FixSettings
from lab.apiserver import ApiServerConfig, serve
from lab.apiserver.rbac import RbacAuthorizer, service_account_groups, service_account_user
from probes.facts import NodeFacts
from probes.transports.cluster import KubeCluster
from probes.transports.discovery import discover
from probes.transports.leases import KubernetesLeaseStore
from probes.transports.pod import DebugPods, DebugPodSettings
from tests.lab.test_apiserver_support import ADMIN_TOKEN, kubelet_standin, make_tls
from tests.lab.test_apiserver_support import base_config as stand_in_config

ROOT = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
BOT_TOKEN = "netcheck-sa-token"
NODE = NodeFacts(name="master", internal_ip="127.0.0.1", ready=True)  # its kubelet stand-in: 127.0.0.1
REQUEST_TIMEOUT_S = 5.0
CLEAR_MESSAGE_CHARS = 400
"""A message longer than this is a dump, not a report."""
WATCH_TIMEOUT_S = 1
POD_LEASE_S = 0.6
"""The debug pod's lease in the session: short, so the session renews it (a pods patch)."""
"""The server ends an allowed node watch after this many seconds (a denied one ends at once)."""


def shipped() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if doc]


def rules() -> list[tuple[str, str, int]]:
    return [(o["kind"], o["metadata"]["name"], i) for o in shipped() if o["kind"] in ("Role", "ClusterRole")
            for i in range(len(o["rules"]))]


def without(kind: str, name: str, index: int) -> tuple[list[dict], dict]:
    objects = copy.deepcopy(shipped())
    role = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    return objects, role["rules"].pop(index)


@dataclass
class Bot:
    cluster: KubeCluster
    authorizer: RbacAuthorizer
    admin: client.ApiClient

    async def fresh_start(self) -> None:
        """As on a first deployment: no Lease yet, so leader election must create it."""
        leases = client.CoordinationV1Api(self.admin)
        try:
            await asyncio.to_thread(leases.delete_namespaced_lease, OpsSettings().lease_name, "netcheck")
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def use_rules(self, objects: list[dict]) -> None:
        fresh = RbacAuthorizer.from_manifests(objects)
        self.authorizer.roles, self.authorizer.bindings = fresh.roles, fresh.bindings


pytestmark = [pytest.mark.asyncio(loop_scope="module"),  # one stand-in and event loop for the module
              pytest.mark.xdist_group("rbac-lab-rules")]  # ... on one xdist worker


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bot]:
    tmp = tmp_path_factory.mktemp("rbac-rules")
    ca, server = make_tls(tmp / "tls")
    async with kubelet_standin(server) as kubelet_port:
        data = stand_in_config(server, kubelet_port, tmp)
        data["tokens"][BOT_TOKEN] = {"user": service_account_user("netcheck", "netcheck"),
                                     "groups": list(service_account_groups("netcheck"))}
        authorizer = RbacAuthorizer.from_manifests(shipped())
        async with serve(ApiServerConfig.model_validate(data), authorizer) as runner:
            url = f"https://127.0.0.1:{runner.addresses[0][1]}"

            def api(token: str) -> client.ApiClient:
                configuration = client.Configuration(host=url)
                configuration.ssl_ca_cert = str(ca.cert)
                configuration.api_key = {"authorization": token}
                configuration.api_key_prefix = {"authorization": "Bearer"}
                return client.ApiClient(configuration)

            admin = api(ADMIN_TOKEN)
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
            await asyncio.to_thread(client.CoreV1Api(admin).create_namespace, namespace)
            cluster = KubeCluster.for_token(url, ca.cert, BOT_TOKEN, request_timeout=REQUEST_TIMEOUT_S)
            try:
                yield Bot(cluster, authorizer, admin)
            finally:
                await cluster.aclose()


Operation = Callable[[KubeCluster], Awaitable[object]]


async def debug_pod_session(cluster: KubeCluster) -> None:
    """What a pod probe does: leftovers list, create, wait Running, exec, log (kubelet-port), renew
    (patch), delete."""
    pods = DebugPods(cluster, DebugPodSettings(start_timeout=REQUEST_TIMEOUT_S, poll_interval=0.05,
                                               lease_duration=POD_LEASE_S))
    pod = await pods.get(NODE)
    try:
        await asyncio.sleep(POD_LEASE_S / 2)  # at least one renewal (every third of the lease)
        result = await pod.run("echo netcheck", timeout=REQUEST_TIMEOUT_S)
        assert "netcheck" in result.stdout
        await cluster.pod_logs(pod.namespace, pod.name, timeout=REQUEST_TIMEOUT_S)
    finally:
        await pods.release(NODE.name)


async def node_watch(cluster: KubeCluster) -> None:
    source = ClusterNodeSource(cluster, watch_timeout_s=WATCH_TIMEOUT_S)
    _, version = await source.list_nodes()
    async for _event in source.watch_nodes(version):
        pass


async def leader_election(cluster: KubeCluster) -> None:
    settings = OpsSettings()
    elector = LeaderElector(KubernetesLeaseStore(cluster, settings.lease_namespace), "rbac-test",
                            settings=settings)
    for _ in range(2):  # create (first time), then read + renew
        await elector.try_acquire_or_renew()


async def fix_lock(cluster: KubeCluster) -> None:
    """The per-node fix Lease a fix holds: created, taken, renewed, released."""
    lock = ClusterFixLock(KubernetesLeaseStore(cluster, "netcheck"), namespace="netcheck",
                          owner="rbac-test", settings=FixSettings(lock_duration=0.6, lock_wait=0))
    held = await lock.acquire(NODE.name, "rbac test")
    await asyncio.sleep(0.3)  # one renewal (every third of the duration)
    await held.release()
    await (await lock.acquire(NODE.name, "rbac test again")).release()  # an existing, released Lease


async def mtu_fix_patch(cluster: KubeCluster) -> None:
    installation = await cluster.get_installation()
    assert installation is not None
    mtu = installation["spec"]["calicoNetwork"].get("mtu", 1450)
    await cluster.patch_installation({"spec": {"calicoNetwork": {"mtu": mtu}}})  # same value: no change


async def calico_mtu_rollout(cluster: KubeCluster) -> None:
    """What calico-mtu reads while it follows the rollout, and the pods it lists on the node."""
    from fixes.rollout import read_rollout

    state = await read_rollout(cluster, 1450)
    assert state.rendered and state.nodes, state
    await cluster.list_pods(field_selector=f"spec.nodeName={NODE.name}")


OPERATIONS: dict[str, Operation] = {
    "discovery (nodes, services, endpoints, Installation, IPPools)": lambda c: discover(c),
    "Installation read (mtu probe)": lambda c: c.get_installation(),
    "IPPool list (probes)": lambda c: c.list_ippools(),
    "API endpoints": lambda c: c.get_endpoints("default", "kubernetes"),
    "debug pod session": debug_pod_session,
    "node-join watch": node_watch,
    "leader election": leader_election,
    "fix lock": fix_lock,
    "calico-mtu fix patch": mtu_fix_patch,
    "calico-mtu rollout (DaemonSet, calico-node pods, TigeraStatus, pods on the node)": calico_mtu_rollout,
}


async def run_all(bot: Bot) -> dict[str, str]:
    """Each operation's failure message (only those that failed), from a fresh start."""
    await bot.fresh_start()
    cluster = bot.cluster
    failures: dict[str, str] = {}
    for what, operation in OPERATIONS.items():
        try:
            await asyncio.wait_for(operation(cluster), REQUEST_TIMEOUT_S * 4)
        except Exception as exc:  # any failure counts; the assertions look at the message
            failures[what] = str(exc)
    return failures


async def test_shipped_rules_let_every_operation_through(bot: Bot) -> None:
    bot.use_rules(shipped())
    bot.authorizer.denials.clear()
    assert await run_all(bot) == {}
    assert bot.authorizer.denials == []


def is_clear_403(message: str, rule: dict) -> bool:
    """One short line with the 403 that names a verb and a resource of the rule (plural or singular)."""
    words = set(re.findall(r"[a-z/]+", message.lower()))
    resources = {r for resource in rule["resources"] for r in (resource, resource.rstrip("s"))}
    return ("\n" not in message and len(message) <= CLEAR_MESSAGE_CHARS and "403" in message
            and bool(words & set(rule["verbs"])) and any(r in message for r in resources))


def rule_cases() -> list:
    return [pytest.param(kind, name, index, id=f"{kind}-{name}-{index}") for kind, name, index in rules()]


def shipped_rule(kind: str, name: str, index: int) -> dict:
    return without(kind, name, index)[1]


@pytest.mark.parametrize(("kind", "name", "index"), rule_cases())
async def test_each_rule_is_needed_and_its_absence_is_clear(
    bot: Bot, kind: str, name: str, index: int
) -> None:
    objects, removed = without(kind, name, index)
    bot.use_rules(objects)
    try:
        failures = await run_all(bot)
    finally:
        bot.use_rules(shipped())
    assert failures, f"removing {kind}/{name} rule {index} ({removed}) broke no netcheck operation"
    clear = [message for message in failures.values() if is_clear_403(message, removed)]
    assert clear, f"no clear 403 naming {removed['verbs']} {removed['resources']}: {failures}"
