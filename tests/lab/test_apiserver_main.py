"""`python -m lab.apiserver --config FILE` as a process: it serves /version over TLS with the configured
certificate, stops on SIGTERM, and a bad config is refused with a one-line error and exit code 2.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import sys
from pathlib import Path

import aiohttp

from tests.lab.test_apiserver_support import base_config, make_tls

STARTUP_SECONDS = 15.0
STOP_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_module_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    ca, server = make_tls(tmp_path / "tls")
    port = _free_port()
    config_file = tmp_path / "apiserver.json"
    config_file.write_text(json.dumps({**base_config(server, 10250, tmp_path), "listen_port": port}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lab.apiserver",
        "--config",
        str(config_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), STARTUP_SECONDS)
        assert line.decode().strip() == f"apiserver listening on https://127.0.0.1:{port}"
        tls = ssl.create_default_context(cafile=str(ca.cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/version", ssl=tls) as response:
                assert (await response.json())["gitVersion"] == "v1.31.0"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), STOP_SECONDS) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.json"
    config_file.write_text(json.dumps({"listen_host": "127.0.0.1"}))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lab.apiserver",
        "--config",
        str(config_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), STARTUP_SECONDS)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"apiserver: bad config {config_file}: listen_port: Field required (and ")
