"""Kubernetes API stand-in for the lab: `serve(config)` in-process or `python -m lab.apiserver --config F`."""

from .app import make_app, serve
from .config import ApiServerConfig, NodeConfig

__all__ = ["ApiServerConfig", "NodeConfig", "make_app", "serve"]
