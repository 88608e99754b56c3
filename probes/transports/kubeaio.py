"""The kubernetes package's asyncio client (`kubernetes.aio`), loaded without the package's own
`__init__`: the one module that imports the client (cluster.py takes every name from here).

Why: a submodule import runs its parents' `__init__` first, and `kubernetes/__init__.py` imports the
synchronous client's side of the package: its kubeconfig loader (requests-oauthlib, oauthlib,
requests, urllib3), dynamic client, informer, stream (websocket-client), utils and leader election:
about 240 modules and a sixth of the CLI's work before its first request, for code netcheck never
runs. `kubernetes.aio` imports none of it (its config loader, REST client, WebSocket exec and watch
are its own, over aiohttp; docs/client-libraries.md#importing-only-the-asyncio-client).

How: the parent packages are registered as package modules built from their own import specs (so
their `__path__` is the installed package's and every submodule still loads from there) whose
`__init__` has not run yet. The first time anything asks a package itself for a name
(`kubernetes.__version__`, `from kubernetes import client`: a module `__getattr__`, PEP 562) its
`__init__` runs in that module, once, so the synchronous client stays usable in the same process
(tests, embedders). A package already imported is left as it is.

tests/probes/test_kubeaio.py proves it in a fresh interpreter against the API stand-in over real
HTTPS: kubeconfig loading, reads, a pod's create/exec (WebSocket)/delete, a node watch and an error's
translation through these names, none of the synchronous side imported, and the synchronous package
complete and working after. A kubernetes release that moves the asyncio client or makes it import
the synchronous side fails that test.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

DEFERRED = ("kubernetes", "kubernetes.aio")
"""Packages whose `__init__` waits for the first attribute asked of them, parent first. The asyncio
client's own `__init__` imports its dynamic client (urllib3), leader election and utils, also unused."""


def _defer_init(name: str) -> None:
    """Package `name` in sys.modules with its `__init__` deferred to the first attribute asked of it."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not an installed regular package: the plain imports below say what is wrong
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def run_init(attribute: str) -> object:
        submodule = sys.modules.get(f"{name}.{attribute}")
        if submodule is not None:  # asked while it is imported (`import kubernetes.aio.x as x` does)
            return submodule
        # popped first: the __init__'s own `from . import client` must not come back here
        if package.__dict__.pop("__getattr__", None) is not None:
            loader.exec_module(package)
        try:
            return package.__dict__[attribute]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None

    package.__dict__["__getattr__"] = run_init
    if sys.modules.setdefault(name, package) is package:  # (not when another thread's import won)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, package)  # what the import system does for a submodule


for _package in DEFERRED:
    _defer_init(_package)

from kubernetes.aio.client import ApiClient, Configuration  # noqa: E402
from kubernetes.aio.client.exceptions import ApiException  # noqa: E402
from kubernetes.aio.config import ConfigException, load_incluster_config, load_kube_config  # noqa: E402

if TYPE_CHECKING:
    from kubernetes.aio.stream import WsApiClient
    from kubernetes.aio.watch import Watch

LATER = {"WsApiClient": "kubernetes.aio.stream", "Watch": "kubernetes.aio.watch"}
"""Imported when first asked for (the first exec, the first watch), not before the first request:
the watch module imports pydoc (to read its list functions' docstrings)."""

__all__ = ["ApiClient", "ApiException", "ConfigException", "Configuration", "Watch", "WsApiClient",
           "load_incluster_config", "load_kube_config"]


def __getattr__(name: str) -> Any:
    if name not in LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(LATER[name]), name)
    globals()[name] = value  # once
    return value
