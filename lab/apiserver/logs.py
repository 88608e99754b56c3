"""Pod logs: dial the node's kubelet for real and relay its answer, or fail like kube-apiserver does."""

from __future__ import annotations

import asyncio
import errno

import aiohttp

from .status import ApiError

KUBELET_DIAL_SECONDS = 3.0
KUBELET_READ_SECONDS = 30.0
FORWARDED_LOG_OPTIONS = ("follow", "previous", "timestamps", "limitBytes", "tailLines", "sinceSeconds")


def _dial_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "i/o timeout"
    os_error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    code = getattr(os_error, "errno", None)
    if code == errno.ECONNREFUSED:
        return "connect: connection refused"
    if code == errno.EHOSTUNREACH:
        return "connect: no route to host"
    if code == errno.ENETUNREACH:
        return "connect: network is unreachable"
    return f"connect: {getattr(os_error, 'strerror', None) or exc}"


async def fetch_logs(
    host_ip: str, port: int, namespace: str, pod: str, container: str, options: dict[str, str]
) -> tuple[int, str]:
    """(status, text) from the kubelet; raises ApiError 500 with Go's dial error
    text when it cannot connect."""
    query = "&".join(f"{k}={options[k]}" for k in FORWARDED_LOG_OPTIONS if k in options)
    url = f"https://{host_ip}:{port}/containerLogs/{namespace}/{pod}/{container}" + (
        f"?{query}" if query else ""
    )
    timeout = aiohttp.ClientTimeout(total=KUBELET_READ_SECONDS, sock_connect=KUBELET_DIAL_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, ssl=False) as response:
                return response.status, await response.text()
    except (TimeoutError, aiohttp.ClientConnectorError, aiohttp.ServerTimeoutError, OSError) as exc:
        raise ApiError(500, "", f'Get "{url}": dial tcp {host_ip}:{port}: {_dial_error(exc)}') from exc
