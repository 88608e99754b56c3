"""netcheck's own exceptions. Library errors (asyncssh, kubernetes ApiException) are translated
into these inside `probes/transports/` only, with `raise ... from exc`.

    NetcheckError
    ├── InvalidInput          a node/interface/CIDR/IP/MTU value failed validation (one-line message)
    │   ├── UnknownNode       a node name the cluster does not know (names the closest ones)
    │   └── UnknownProbe      a probe id that is not registered
    ├── ConfigError           the configuration file or environment is unusable
    │   └── ConfigMissing     a file it needs (config file, kubeconfig) is not there: could not check
    ├── ProbeSkip             raised by a probe: "this cannot be checked here, because ..."
    ├── TransportUnavailable  the node shell or debug pod could not be had
    │   ├── HostUnreachable   SSH connect/auth failed or timed out
    │   ├── HostKeyRejected   the node's SSH host key is unknown or changed (never auto-accepted)
    │   └── PodUnavailable    the debug pod could not be created or did not become Running
    ├── CommandTimeout        a node or pod command ran past its timeout
    └── ClusterError          the Kubernetes API answered with an error
        ├── ClusterUnreachable
        ├── ClusterForbidden  403, with the verb/resource the RBAC rule lacks
        └── ClusterNotFound   404
"""

from __future__ import annotations


class NetcheckError(Exception):
    """Base of every error netcheck raises on purpose; `str()` is one line for the user."""


class InvalidInput(NetcheckError, ValueError):
    pass


class UnknownNode(InvalidInput):
    """A node name the cluster does not know; the message names the closest existing names."""


class UnknownProbe(InvalidInput):
    """A probe id that is not registered."""


class ConfigError(NetcheckError):
    pass


class ConfigMissing(ConfigError):
    """The configuration file or kubeconfig does not exist (or cannot be read): nothing wrong was
    written, there is just nothing to check with (the CLI's "could not check" exit status)."""


class ProbeSkip(NetcheckError):
    """A probe cannot run on this node; the message says why and becomes the `skip` summary."""


class TransportUnavailable(NetcheckError):
    pass


class HostUnreachable(TransportUnavailable):
    pass


class HostKeyRejected(TransportUnavailable):
    pass


class PodUnavailable(TransportUnavailable):
    pass


class CommandTimeout(NetcheckError):
    pass


class ClusterError(NetcheckError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClusterUnreachable(ClusterError):
    pass


class ClusterForbidden(ClusterError):
    pass


class ClusterNotFound(ClusterError):
    pass


class ClusterConflict(ClusterError):
    """409: the object already exists, or its resourceVersion changed since it was read."""
