"""Who this netcheck process is, for the cluster objects it owns: its debug pods (owner label) and
the per-node fix Leases it holds (fixes/lock.py). Two processes (the CLI and the bot, two bot replicas
during a handover) must tell their objects apart, so the id is unique per process, not per host.

An owner id is a valid label value (<= 63 characters of [A-Za-z0-9._-], alphanumeric at both ends).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket

_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")
HOST_PART = 40
"""Characters of the host name kept (a pod name in a cluster); pid and a random part follow."""


@functools.cache
def process_owner() -> str:
    """This process's owner id, e.g. `netcheck-7d9f8-x2k4q-4711-9f3a1c` (host, pid, random)."""
    host = _NOT_LABEL.sub("-", socket.gethostname())[:HOST_PART].strip("-._") or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
