"""Every probe netcheck runs, one module each; importing this package registers them all.

Add a probe: write probes/catalog/<id>.py with `@probe(...)`, import it below, test it in
tests/probes/test_<id>.py, and give it a lab fault plus a scenario test in tests/lab/.
Import order is display order (roughly the guide's layers, bottom to top).
"""

from probes.registry import default_registry

default_registry.validate()
