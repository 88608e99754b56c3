"""Fixes netcheck can apply, one module each; importing this package registers them."""

from fixes.catalog import calico_mtu, etc_hosts, ip_forward, kernel_modules, masquerade

__all__ = ["calico_mtu", "etc_hosts", "ip_forward", "kernel_modules", "masquerade"]
