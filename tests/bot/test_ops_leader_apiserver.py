"""Leader election over real HTTPS: two electors, each with its own official kubernetes client and
`KubernetesLeaseStore`, against the lab's API stand-in (lab/apiserver) run in-process on 127.0.0.1.

Covers: the real store's get/create/replace and error translation (404 → ClusterNotFound on first
get, 409 → ClusterConflict on a stale resourceVersion, 403 → ClusterForbidden for a read-only token);
exactly one of two electors leads while both run; the standby takes over after the leader releases
and, separately, after the leader stops renewing (lease expiry).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.ops.leader import LeaderElector
from bot.ops.settings import OpsSettings
from probes.errors import ClusterConflict, ClusterForbidden, ClusterNotFound
from probes.transports.leases import KubernetesLeaseStore
from tests.lab.test_apiserver_support import READONLY_TOKEN, running_lab
from tests.waiting import until

NAMESPACE = "kube-system"  # exists in the stand-in from the start
FAST = OpsSettings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1, lease_namespace=NAMESPACE)


@pytest.fixture
async def lab(tmp_path: Path):
    async with running_lab(tmp_path) as lab:
        yield lab


async def test_store_translates_api_errors(lab):
    store = KubernetesLeaseStore(lab.cluster(), NAMESPACE)
    with pytest.raises(ClusterNotFound):
        await store.get(FAST.lease_name)
    elector = LeaderElector(store, "a", settings=FAST)
    assert await elector.try_acquire_or_renew()
    lease = await store.get(FAST.lease_name)
    assert lease["spec"]["holderIdentity"] == "a"
    assert await elector.try_acquire_or_renew()  # renewal moves resourceVersion on
    lease["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(ClusterConflict):
        await store.replace(FAST.lease_name, lease)
    readonly = KubernetesLeaseStore(lab.cluster(READONLY_TOKEN), NAMESPACE)
    with pytest.raises(ClusterForbidden, match="leases"):
        await readonly.replace(FAST.lease_name, await readonly.get(FAST.lease_name))


async def test_two_electors_one_leader_then_takeover(lab):
    a = LeaderElector(KubernetesLeaseStore(lab.cluster(), NAMESPACE), "replica-a", settings=FAST)
    b = LeaderElector(KubernetesLeaseStore(lab.cluster(), NAMESPACE), "replica-b", settings=FAST)
    tasks = {"a": asyncio.create_task(a.run()), "b": asyncio.create_task(b.run())}
    try:
        await until(lambda: a.is_leader or b.is_leader, timeout=10)
        for _ in range(15):  # 1.5 s, more than a lease duration: never two leaders
            assert a.is_leader != b.is_leader
            await asyncio.sleep(0.1)
        leader, standby = (a, b) if a.is_leader else (b, a)
        leader_key = "a" if leader is a else "b"

        tasks[leader_key].cancel()  # graceful stop: release hands over without waiting for expiry
        await asyncio.gather(tasks[leader_key], return_exceptions=True)
        loop = asyncio.get_running_loop()
        released_at = loop.time()
        await leader.release()
        await until(lambda: standby.is_leader, timeout=10)
        assert loop.time() - released_at < FAST.lease_duration
        lease = await standby.store.get(FAST.lease_name)
        assert lease["spec"]["holderIdentity"] == standby.identity

        tasks[leader_key] = asyncio.create_task(leader.run())  # the old leader comes back as standby
        await asyncio.sleep(0.5)
        assert standby.is_leader and not leader.is_leader

        standby_key = "b" if leader_key == "a" else "a"
        tasks[standby_key].cancel()  # crash: no release; the other waits out the lease
        crashed_at = loop.time()
        await until(lambda: leader.is_leader, timeout=10)
        assert loop.time() - crashed_at >= FAST.lease_duration * 0.8
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
