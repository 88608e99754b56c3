"""What `netcheck demo` was asked to do, validated before anything is built (bad input: one line, exit 2).

Built by bot/commands/demo.py from argparse; read by lab.demo.flow.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lab import faults, nodeaccess, spec

DEFAULT_NODE = "worker2"


class DemoOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    keep: bool = Field(False, description="Leave the lab up afterwards.")
    fault: str | None = Field(None, description="An extra lab fault injected on `node` before the check.")
    node: str = Field(DEFAULT_NODE, description="The node the fault goes on and /netcheck asks about.")
    workers: int = Field(2, description="Worker count of the lab (worker2 is the WiFi node).")
    color: bool = Field(False, description="ANSI colours in the rendered conversation.")
    node_access: str = Field("ssh", description="netcheck's node_access: ssh, pod (sshd stopped, no SSH "
                             "configured: host pods) or auto.")

    @field_validator("node_access")
    @classmethod
    def _known_mode(cls, mode: str) -> str:
        if mode not in nodeaccess.MODES:
            raise ValueError(f"unknown node access {mode!r} (known: {', '.join(nodeaccess.MODES)})")
        return mode

    save_images: Path | None = Field(None, description="Directory the images the bot uploads are saved in.")

    @field_validator("save_images")
    @classmethod
    def _writable_directory(cls, path: Path | None) -> Path | None:
        """An existing directory, or one that can be made now (before the lab is built)."""
        if path is None:
            return None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--save-images {path}: {exc.strerror or exc}") from None
        return path

    @field_validator("fault")
    @classmethod
    def _known_fault(cls, name: str | None) -> str | None:
        if name is not None and name not in faults.REGISTRY:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(sorted(faults.REGISTRY))})")
        return name

    @field_validator("workers")
    @classmethod
    def _worker_count(cls, workers: int) -> int:
        spec.nodes(workers)  # raises ValueError with the allowed range
        return workers

    @model_validator(mode="after")
    def _node_in_lab(self) -> DemoOptions:
        """The node must exist in a lab of this size (checked here, before the lab is built)."""
        names = [n.name for n in spec.nodes(self.workers)]
        if self.node not in names:
            raise ValueError(f"no node {self.node!r} in a lab with {self.workers} workers "
                             f"(nodes: {', '.join(names)})")
        return self
