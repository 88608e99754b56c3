"""Fixtures of the tests/bot process tests: the API stand-in with the shipped RBAC (`cluster`) and
the Slack stand-in (`slack`). Their helpers are in tests/bot/replicas.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from lab.apiserver import ApiServerConfig, serve
from lab.apiserver.rbac import service_account_groups, service_account_user
from lab.slack.webapi import SlackStandIn
from tests.bot.replicas import BOT_TOKEN, CHANNEL, RBAC_MANIFEST, Cluster
from tests.lab.test_apiserver_support import ADMIN_TOKEN, kubelet_standin, make_tls
from tests.lab.test_apiserver_support import base_config as stand_in_config


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    ca, server = make_tls(tmp_path / "tls")
    async with kubelet_standin(server) as kubelet_port:
        data = stand_in_config(server, kubelet_port, tmp_path)
        data["tokens"][BOT_TOKEN] = {"user": service_account_user("netcheck", "netcheck"),
                                     "groups": list(service_account_groups("netcheck"))}
        data["rbac_manifests"] = [str(RBAC_MANIFEST)]
        running = serve(ApiServerConfig.model_validate(data))
        runner = await running.__aenter__()
        stopped = False
        try:
            url = f"https://127.0.0.1:{runner.addresses[0][1]}"
            configuration = client.Configuration(host=url)
            configuration.ssl_ca_cert = str(ca.cert)
            configuration.api_key = {"authorization": ADMIN_TOKEN}
            configuration.api_key_prefix = {"authorization": "Bearer"}
            admin = client.ApiClient(configuration)
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name="netcheck"))
            await asyncio.to_thread(client.CoreV1Api(admin).create_namespace, namespace)
            kubeconfig = tmp_path / "kubeconfig-bot"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "bot",
                "clusters": [{"name": "lab",
                              "cluster": {"server": url, "certificate-authority": str(ca.cert)}}],
                "users": [{"name": "bot", "user": {"token": BOT_TOKEN}}],
                "contexts": [{"name": "bot", "context": {"cluster": "lab", "user": "bot"}}],
            }))

            class Stopper(contextlib.AbstractAsyncContextManager):
                async def __aexit__(self, *exc: object) -> None:
                    nonlocal stopped
                    if not stopped:
                        stopped = True
                        await running.__aexit__(None, None, None)

            yield Cluster(url, str(ca.cert), admin, kubeconfig, Stopper())
        finally:
            if not stopped:
                await running.__aexit__(None, None, None)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    web = SlackStandIn(channels=(CHANNEL,))
    await web.start()
    yield web
    await web.stop()
