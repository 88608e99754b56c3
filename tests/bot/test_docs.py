"""README blocks generated from code are current: the probe catalog and the config reference."""

from __future__ import annotations

from pathlib import Path

import probes.catalog  # noqa: F401  (registers every probe)
from bot.docs import markers, render_readme
from probes.registry import default_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_generated_blocks_are_current() -> None:
    text = README.read_text()
    assert render_readme(text) == text, "README is stale: run `python -m bot.docs`"


def test_every_probe_is_in_the_readme_catalog_with_its_layer() -> None:
    start, end = markers("probe-catalog")
    block = README.read_text().split(start)[1].split(end)[0]
    assert len(default_registry.ids()) == 16
    for spec in default_registry:
        assert f"| `{spec.id}` | {spec.layer.value} |" in block
        assert f"#### `{spec.id}`" in block


def test_config_reference_lists_nested_keys() -> None:
    start, end = markers("config-reference")
    block = README.read_text().split(start)[1].split(end)[0]
    for key in ("`kubeconfig`", "`ssh.known_hosts`", "`debug_pod.image`", "`probes.disabled`",
                "`slack.approvers`", "`cluster.service_cidr`"):
        assert key in block
