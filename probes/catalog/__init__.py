"""Every probe netcheck runs, one module each; importing this package registers them all.

Add a probe: write probes/catalog/<id>.py with `@probe(...)`, import it below, test it in
tests/probes/test_<id>.py, and give it a lab fault plus a scenario test in tests/lab/.
Import order is display order (roughly the layers of docs/troubleshooting.md#layers, bottom to top).
"""

from probes.registry import default_registry  # noqa: I001 (probe import order is display order)

from probes.catalog import host_api  # noqa: F401
from probes.catalog import pod_api  # noqa: F401
from probes.catalog import pod_routes  # noqa: F401
from probes.catalog import mtu  # noqa: F401
from probes.catalog import masquerade  # noqa: F401
from probes.catalog import return_path  # noqa: F401
from probes.catalog import node_address  # noqa: F401
from probes.catalog import kubelet_port  # noqa: F401
from probes.catalog import ip_forward  # noqa: F401
from probes.catalog import kernel_modules  # noqa: F401
from probes.catalog import etc_hosts  # noqa: F401
from probes.catalog import iptables_mode  # noqa: F401
from probes.catalog import encapsulation  # noqa: F401
from probes.catalog import pod_block_routes  # noqa: F401
from probes.catalog import resolved_53  # noqa: F401
from probes.catalog import pod_dns  # noqa: F401

default_registry.validate()
