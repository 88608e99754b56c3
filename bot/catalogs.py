"""The registered probes and fixes, for what the bot lists: CLI help (`check --probe`, `fix FIX_ID`)
and the generated docs pages (bot/docs.py). Importing the catalogs registers them, so a probe or a
fix added with its one module and one import line shows up here with nothing else to edit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the check command lists probes: it needs no fix machinery
    from fixes.registry import FixRegistry
    from probes.registry import Registry


def probe_registry() -> Registry:
    import probes.catalog  # noqa: F401  (registers every probe)
    from probes.registry import default_registry

    return default_registry


def fix_registry() -> FixRegistry:
    import fixes.catalog  # noqa: F401  (registers every fix)
    from fixes.registry import default_registry

    return default_registry


def one_of(ids: list[str]) -> str:
    """'a, b or c'."""
    return ", ".join(ids[:-1]) + f" or {ids[-1]}" if len(ids) > 1 else "".join(ids)
