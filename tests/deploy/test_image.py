"""deploy/Dockerfile: static checks always, a real `docker build` where a Docker engine answers.

Covers: multi-stage (builder with the build tools, final stage without), slim Python base, non-root
uid 10001, `netcheck serve` entry point, no build tools installed in the final stage; the build itself
and, on the built image, the user, the entry point and `netcheck --help` running as that user.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, TOOL_TIMEOUT, run_tool, tool

DOCKERFILE = DEPLOY / "Dockerfile"
IMAGE = "netcheck-test:deploy"
BUILD_TIMEOUT = 600.0
"""Seconds the image build may take (downloads every wheel)."""


def stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE.read_text())[1:]


def test_dockerfile_shape():
    builder, final = stages()
    assert re.match(r"python:3\.1[12]-slim AS builder", builder)
    assert re.match(r"python:3\.1[12]-slim\s", final)
    assert "build --wheel" in builder
    assert "COPY . " not in final and "apt-get install" not in final
    assert not re.search(r"\b(gcc|build-essential|python -m build)\b", final)
    assert re.search(r"(?m)^USER 10001", final)
    assert 'ENTRYPOINT ["netcheck", "serve"]' in final
    assert not re.search(r"(?m)^HEALTHCHECK", final)  # Kubernetes probes instead


def _engine_reason() -> str | None:
    docker = tool("docker")
    if docker is None:
        return "no docker client installed"
    done = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info` (only the client is here): {last}"
    return None


def test_image_builds_and_runs_as_non_root():
    reason = _engine_reason()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", IMAGE, str(ROOT)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    user = run_tool("docker", "image", "inspect", "-f", "{{.Config.User}}", IMAGE).strip()
    assert user == "10001:10001"
    entry = run_tool("docker", "image", "inspect", "-f", "{{json .Config.Entrypoint}}", IMAGE).strip()
    assert entry == '["netcheck","serve"]'
    run_tool("docker", "run", "--rm", "--entrypoint", "netcheck", IMAGE, "--help")
    for build_tool in ("gcc", "cc", "make"):
        argv = ["docker", "run", "--rm", "--entrypoint", "sh", IMAGE, "-c", f"command -v {build_tool}"]
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
        assert probe.returncode != 0, f"{build_tool} left in the image"
