"""What `netcheck demo` was asked to do, validated before anything is built (bad input: one line, exit 2).

Built by bot/commands/demo.py from argparse; read by lab.demo.flow.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lab import faults, nodeaccess, spec

CASE_STUDY_FAULT = "no-masquerade"
"""What the demo switches on when the node has no fault of its own and none was asked for (a
layout that is healthy by default): the case study, so there is something to diagnose and fix."""


class DemoOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    keep: bool = Field(False, description="Leave the lab up afterwards.")
    fault: str | None = Field(None, description="An extra lab fault injected on `node` before the check.")
    node: str | None = Field(None, description="The node the fault goes on and /netcheck asks about "
                                               "(default: the layout's WiFi node).")
    layout: str = Field(spec.DEFAULT_LAYOUT, description="The lab's layout (lab.spec.LAYOUTS).")
    workers: int = Field(2, description="Worker count of the lab (the second worker is the WiFi node).")
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

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, name: str) -> str:
        spec.layout(name)  # raises ValueError listing the layouts
        return name

    @model_validator(mode="after")
    def _node_in_lab(self) -> DemoOptions:
        """Workers in range and the node in a lab of this layout and size (checked before it is built)."""
        nodes = spec.layout(self.layout).nodes(self.workers)  # raises ValueError with the allowed range
        if self.node is None:
            if not any(n.wifi for n in nodes):
                raise ValueError(f"a {self.layout} lab with {self.workers} workers has no WiFi node: "
                                 "give --node")
            return self
        names = [n.name for n in nodes]
        if self.node not in names:
            raise ValueError(f"no node {self.node!r} in a {self.layout} lab with {self.workers} workers "
                             f"(nodes: {', '.join(names)})")
        return self

    @property
    def target(self) -> str:
        """The node the demo works on: `node`, else the layout's WiFi node."""
        if self.node is not None:
            return self.node
        return next(n.name for n in spec.layout(self.layout).nodes(self.workers) if n.wifi)
