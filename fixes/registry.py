"""The fix registry: `@fix(id=..., addresses=..., verify=(...))` on a `Fix` subclass, checked at
import time like probes/registry.py. Used by `fixes.runner.FixRunner` and bot/catalogs.py (CLI help,
the generated fix catalog).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fixes.base import Fix
from probes.registry import Registry as ProbeRegistry
from probes.registry import default_registry as default_probe_registry

_ID = re.compile(r"^[a-z][a-z0-9-]*$")


class FixRegistryError(Exception):
    """A fix definition is wrong; raised at import so a bad fix stops start-up."""


def _catalog_probes() -> ProbeRegistry:
    """The registered probes (importing the catalog registers them; probes never import fixes)."""
    import probes.catalog  # noqa: F401

    return default_probe_registry


@dataclass
class FixRegistry:
    fixes: dict[str, type[Fix]] = field(default_factory=dict)
    probes: ProbeRegistry = field(default_factory=_catalog_probes)
    """The probes fixes are checked against: a fix addresses one of them, and that probe must
    declare the fix in its `fixes=` (else no finding could ever offer it: a dead fix)."""

    def add(self, cls: type[Fix]) -> None:
        if not (inspect.isclass(cls) and issubclass(cls, Fix)):
            raise FixRegistryError(f"{cls!r} is not a Fix subclass")
        if inspect.isabstract(cls):
            raise FixRegistryError(f"fix {cls.id!r} leaves abstract methods unimplemented")
        if not _ID.match(cls.id):
            raise FixRegistryError(f"fix id {cls.id!r} must match {_ID.pattern}")
        if cls.id in self.fixes:
            raise FixRegistryError(f"fix id {cls.id!r} is registered twice")
        for probe_id in (cls.addresses, *cls.verify_probes):
            if probe_id not in self.probes:
                raise FixRegistryError(f"fix {cls.id!r} names unknown probe {probe_id!r}")
        if cls.addresses not in cls.verify_probes:
            raise FixRegistryError(f"fix {cls.id!r} must verify the probe it addresses")
        if cls.id not in self.probes[cls.addresses].fixes:
            raise FixRegistryError(
                f"fix {cls.id!r} addresses probe {cls.addresses!r}, which never proposes it "
                f"(the probe declares fixes={self.probes[cls.addresses].fixes!r})"
            )
        self.fixes[cls.id] = cls

    def validate(self) -> None:
        """Every fix a probe declares is registered (call once the whole catalog is imported)."""
        for spec in self.probes:
            for fix_id in spec.fixes:
                if fix_id not in self.fixes:
                    raise FixRegistryError(f"probe {spec.id!r} may propose fix {fix_id!r}, "
                                           "which is not registered")

    def __getitem__(self, fix_id: str) -> type[Fix]:
        return self.fixes[fix_id]

    def __contains__(self, fix_id: object) -> bool:
        return fix_id in self.fixes

    def __iter__(self) -> Iterator[type[Fix]]:
        return iter(self.fixes.values())

    def ids(self) -> list[str]:
        return sorted(self.fixes)


default_registry = FixRegistry()


def fix(
    *,
    id: str,
    addresses: str,
    verify: tuple[str, ...] | list[str] = (),
    registry: FixRegistry | None = None,
) -> Callable[[type[Fix]], type[Fix]]:
    """Register a fix class; `verify` defaults to just the probe it addresses."""

    def register(cls: type[Fix]) -> type[Fix]:
        cls.id = id
        cls.addresses = addresses
        cls.verify_probes = tuple(verify) or (addresses,)
        (registry or default_registry).add(cls)
        return cls

    return register
