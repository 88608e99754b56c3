"""The one configuration model of netcheck, loaded from YAML plus the environment.

Called by every command through `load(path)` (`--config PATH`, else `NETCHECK_CONFIG`, else
defaults only). Secrets and endpoints come from the environment: SLACK_BOT_TOKEN,
SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_API_URL (into `slack`), KUBECONFIG (into
`kubeconfig` when the file sets none), POD_NAMESPACE (the bot's own namespace: the default of
`debug_pod.namespace` and `ops.lease_namespace`; in a pod without it, the ServiceAccount's namespace
file). Any problem raises `ConfigError` with ONE line naming the key, e.g.
`config error: ssh.port: Input should be a valid integer`; the CLI exits 2 on it.

To add a section: give it a pydantic sub-model with extra="forbid" and add one field to `Config`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.ops.settings import OpsSettings
from bot.slack.settings import SlackSettings
from bot.watch.settings import WatchSettings
from fixes.settings import FixSettings
from probes.errors import ConfigError, ConfigMissing
from probes.settings import ProbeSettings
from probes.transports.access import NodeAccessMode
from probes.transports.cluster import ClusterSettings
from probes.transports.commands import field_value, node_name, shown
from probes.transports.discovery import ClusterOverrides
from probes.transports.hostpod import HostPodSettings
from probes.transports.pod import DebugPodSettings
from probes.transports.ssh import SSHSettings

CONFIG_ENV = "NETCHECK_CONFIG"
NAMESPACE_ENV = "POD_NAMESPACE"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where Kubernetes puts the pod's namespace when the ServiceAccount token is mounted."""
OWN_NAMESPACE_KEYS = (("debug_pod", "namespace"), ("ops", "lease_namespace"))
"""Keys whose default is the bot's own namespace (POD_NAMESPACE), not a fixed name."""
LogLevel = Literal["debug", "info", "warning", "error"]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kubeconfig: Path | None = Field(None, description="kubeconfig file (env KUBECONFIG); None: in-cluster.")
    context: str | None = Field(None, description="kubeconfig context; None: its current context.")
    request_timeout: float = Field(10.0, gt=0, description="Seconds one Kubernetes API request may take.")
    log_level: LogLevel = Field(
        "warning", description="debug, info, warning or error; env NETCHECK_LOG_LEVEL and --log-level win."
    )
    node_access: NodeAccessMode = Field(
        "ssh",  # validated into NodeAccessMode.SSH
        validate_default=True,
        description="How netcheck reaches a node's host side: ssh, pod (a host pod through the API, no "
        "SSH; docs/node-access.md) or auto (SSH where a key and the node's host key are configured).",
    )
    node_access_overrides: dict[str, NodeAccessMode] = Field(
        default_factory=dict, description="node_access for single nodes, by node name."
    )
    ssh: SSHSettings = Field(default_factory=SSHSettings)
    debug_pod: DebugPodSettings = Field(default_factory=DebugPodSettings)
    host_pod: HostPodSettings = Field(default_factory=HostPodSettings)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    fixes: FixSettings = Field(default_factory=FixSettings)
    cluster: ClusterOverrides = Field(default_factory=ClusterOverrides)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)

    @field_validator("node_access_overrides")
    @classmethod
    def _override_names(cls, overrides: dict[str, NodeAccessMode]) -> dict[str, NodeAccessMode]:
        for name in overrides:
            field_value(node_name, name)
        return overrides

    def cluster_settings(self) -> ClusterSettings:
        return ClusterSettings(kubeconfig=self.kubeconfig, context=self.context,
                               request_timeout=self.request_timeout)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"config error: {where}: {message}"


def _known_probe_ids() -> list[str]:
    import probes.catalog  # noqa: F401  (importing the catalog registers the probes)
    from probes.registry import default_registry

    return default_registry.ids()


def check_probe_ids(config: Config) -> None:
    """Every probe id the config names must exist: a typo in `probes.disabled` would otherwise
    silently run the probe it meant to switch off. The error names the key and the closest ids."""
    known = _known_probe_ids()
    named = [("probes.disabled", config.probes.disabled), ("probes.timeouts", list(config.probes.timeouts)),
             ("slack.probes", config.slack.probes or [])]
    for key, ids in named:
        for probe_id in ids:
            if probe_id not in known:
                closest = difflib.get_close_matches(probe_id, known, n=3, cutoff=0.0)
                raise ConfigError(f"config error: {key}: unknown probe id {shown(probe_id)}; "
                                  f"closest: {', '.join(closest)}")


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigMissing(f"config error: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error: {path}{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config error: {path}: the top level must be a mapping of keys")
    return data


def own_namespace(env: Mapping[str, str]) -> str | None:
    """The namespace the bot runs in: POD_NAMESPACE (the manifests set it from the downward API),
    else, inside a pod, the mounted ServiceAccount's namespace file; None outside a cluster."""
    if env.get(NAMESPACE_ENV):
        return env[NAMESPACE_ENV]
    if env.get("KUBERNETES_SERVICE_HOST"):
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
        except OSError:
            return None
    return None


def _with_own_namespace(data: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """Fill every own-namespace key the file leaves unset, so one install works in any namespace."""
    if namespace is None:
        return data
    for section, key in OWN_NAMESPACE_KEYS:
        values = data.get(section)
        if values is None:
            values = {}
        if isinstance(values, dict) and not values.get(key):
            data = {**data, section: {**values, key: namespace}}
    return data


def load(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """The configuration from `path` (or $NETCHECK_CONFIG) and the environment."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV)
    data = _read(Path(chosen)) if chosen else {}
    if not data.get("kubeconfig") and env.get("KUBECONFIG"):
        # KUBECONFIG may list several files; the client's default loader handles that itself
        first = env["KUBECONFIG"].split(os.pathsep)[0]
        data = {**data, "kubeconfig": first}
    from_env = {
        key: env[var]
        for key, var in (("bot_token", "SLACK_BOT_TOKEN"), ("signing_secret", "SLACK_SIGNING_SECRET"),
                         ("app_token", "SLACK_APP_TOKEN"), ("api_url", "SLACK_API_URL"))
        if env.get(var)
    }
    slack_file = data.get("slack") or {}
    if from_env and isinstance(slack_file, dict):  # the file wins over the environment
        data = {**data, "slack": {**from_env, **slack_file}}
    data = _with_own_namespace(data, own_namespace(env))
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    check_probe_ids(config)
    return config
