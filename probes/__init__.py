"""netcheck's read-only diagnosis layer: probes, the engine that runs them, and their transports.

Nothing in this package changes a node or the cluster; fixes live in `fixes/`, one layer up.
"""
