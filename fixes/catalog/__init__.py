"""Fixes netcheck can apply, one module each; importing this package registers them."""

from fixes.catalog import calico_mtu, etc_hosts, ip_forward, kernel_modules, masquerade
from fixes.registry import default_registry

default_registry.validate()  # a probe proposing a fix nobody registered stops start-up here

__all__ = ["calico_mtu", "etc_hosts", "ip_forward", "kernel_modules", "masquerade"]
