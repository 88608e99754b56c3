"""Fixes netcheck can apply, one module each; importing this package registers them.

Add a fix: write fixes/catalog/<id>.py with a `@fix(...)` Fix subclass, import it below, name it in
the proposing probe's `fixes=`, and test it in tests/fixes/test_catalog.py (the FakeNode model).
"""

from fixes.registry import default_registry  # noqa: I001 (one import line per fix, below)

from fixes.catalog import calico_mtu  # noqa: F401
from fixes.catalog import etc_hosts  # noqa: F401
from fixes.catalog import ip_forward  # noqa: F401
from fixes.catalog import kernel_modules  # noqa: F401
from fixes.catalog import masquerade  # noqa: F401

default_registry.validate()  # a probe proposing a fix nobody registered stops start-up here
