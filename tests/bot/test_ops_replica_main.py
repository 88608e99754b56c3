"""A replica process for test_ops_two_processes.py: OpsRuntime with the real KubernetesLeaseStore,
printing one line per leadership change, until SIGTERM. Run as
`python -m tests.bot.test_ops_replica_main URL CA TOKEN IDENTITY` (no tests in this module; the name
keeps it inside the files this helper owns).
"""

from __future__ import annotations

import asyncio
import sys

from bot.ops.runtime import OpsRuntime
from bot.ops.settings import OpsSettings
from probes.transports.cluster import KubeCluster
from probes.transports.leases import KubernetesLeaseStore

SETTINGS = OpsSettings(health_host="127.0.0.1", health_port=0, lease_duration=2.0, renew_deadline=1.2,
                       retry_period=0.1, shutdown_grace=3.0, cleanup_timeout=2.0)


async def main(url: str, ca: str, token: str, identity: str) -> None:
    store = KubernetesLeaseStore(KubeCluster.for_token(url, ca, token), SETTINGS.lease_namespace)

    async def ready() -> bool:
        return True

    async def started() -> None:
        print(f"{identity} answering", flush=True)

    async def stopped() -> None:
        print(f"{identity} stopped answering", flush=True)

    runtime = OpsRuntime(SETTINGS, lease_store=store, slack_ready=ready, cluster_ready=ready,
                         on_started_leading=started, on_stopped_leading=stopped, identity=identity)
    port = await runtime.start()
    print(f"{identity} health {port}", flush=True)
    failed = await runtime.run_until_shutdown()
    print(f"{identity} exited failed={failed}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
