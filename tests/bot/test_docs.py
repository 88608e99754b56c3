"""The docs blocks generated from code are current: the probe catalog (docs/probes.md), the fix
catalog (docs/fixes.md) and the config reference (docs/configuration.md); every relative link in the
README and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.catalogs import fix_registry, probe_registry
from bot.docs import GENERATED, markers, render

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def block(page: str, name: str) -> str:
    start, end = markers(name)
    return (ROOT / page).read_text().split(start)[1].split(end)[0]


@pytest.mark.parametrize("page", sorted(GENERATED))
def test_generated_blocks_are_current(page: str) -> None:
    text = (ROOT / page).read_text()
    assert render(page, text) == text, f"{page} is stale: run `python -m bot.docs`"


def test_every_probe_is_in_the_catalog_with_its_layer() -> None:
    catalog = block("docs/probes.md", "probe-catalog")
    assert len(probe_registry().ids()) == 16
    for spec in probe_registry():
        assert f"| `{spec.id}` | {spec.layer.value} |" in catalog
        assert f"### `{spec.id}`" in catalog


def test_every_fix_is_in_the_catalog_with_the_probes_that_propose_it() -> None:
    catalog = block("docs/fixes.md", "fix-catalog")
    assert len(fix_registry().ids()) == 5
    proposed_by, verified_by = "`masquerade`, `return-path`", "`masquerade`, `pod-api`, `return-path`"
    assert f"| `masquerade` | {proposed_by} | {verified_by} |" in catalog
    for cls in fix_registry():
        assert f"### `{cls.id}`" in catalog and cls.title() in catalog


def test_config_reference_lists_nested_keys() -> None:
    reference = block("docs/configuration.md", "config-reference")
    for key in ("`kubeconfig`", "`ssh.known_hosts`", "`debug_pod.image`", "`probes.disabled`",
                "`slack.approvers`", "`cluster.service_cidr`"):
        assert key in reference


def test_relative_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages
              for target in LINK.findall(page.read_text())
              if "://" not in target and not (page.parent / target).exists()]
    assert broken == []
