"""Configuration loading (bot/config.py).

Covers: defaults without a file (the debug image pinned by digest); YAML values land in the
sub-models; NETCHECK_CONFIG is used when no path is given; KUBECONFIG and SLACK_* come from the
environment (the file wins); the own-namespace keys default to POD_NAMESPACE (the file wins); every bad
input gives ONE line naming the key (wrong type, unknown key, bad node name in ssh.hosts, bad
CIDR override, invalid YAML, unreadable file, non-mapping top level); unknown probe ids in
probes.disabled/probes.timeouts/slack.probes name the closest ids; ssh.hosts values must be hosts;
Slack ids and channels are validated.
"""

from __future__ import annotations

import pytest

from bot.config import load
from probes.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "netcheck.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    config = load(None, env={})
    assert config.debug_pod.image.startswith("docker.io/nicolaka/netshoot:v0.13@sha256:")
    assert config.debug_pod.namespace == config.ops.lease_namespace == "netcheck"
    assert config.log_level == "warning" and config.ops.leader_election is True


def test_own_namespace_from_pod_namespace(tmp_path) -> None:
    config = load(None, env={"POD_NAMESPACE": "platform"})
    assert config.debug_pod.namespace == config.ops.lease_namespace == "platform"
    path = write(tmp_path, "debug_pod: {namespace: tools}\nops: {lease_name: x}\n")
    config = load(path, env={"POD_NAMESPACE": "platform"})
    assert (config.debug_pod.namespace, config.ops.lease_namespace) == ("tools", "platform")
    with pytest.raises(ConfigError, match="debug_pod.namespace"):
        load(None, env={"POD_NAMESPACE": "Not A Namespace"})
    assert config.ssh.user == "root" and config.ssh.port == 22
    assert config.kubeconfig is None


def test_values_from_yaml_and_env(tmp_path) -> None:
    path = write(tmp_path, """
context: lab
ssh: {user: ops, port: 2222, sudo: true, hosts: {worker2: {host: 10.0.0.5, port: 22}}}
debug_pod: {image: busybox, namespace: tools, start_timeout: 30}
probes: {default_timeout: 5, timeouts: {mtu: 12}, disabled: [pod-dns], max_nodes_in_parallel: 2}
cluster: {service_cidr: 10.96.0.0/12, api_service_ip: 10.96.0.1, api_service_port: 443}
slack: {approvers: [U1]}
""")
    env = {"NETCHECK_CONFIG": str(path), "KUBECONFIG": "/k/config:/k/other", "SLACK_BOT_TOKEN": "xoxb-1"}
    config = load(None, env=env)
    assert config.context == "lab" and str(config.kubeconfig) == "/k/config"
    assert config.ssh.hosts["worker2"].host == "10.0.0.5" and config.ssh.sudo
    assert config.probes.timeout_for("mtu") == 12 and config.probes.max_nodes_in_parallel == 2
    assert config.cluster.service_cidr == "10.96.0.0/12"
    assert config.slack.bot_token.get_secret_value() == "xoxb-1" and config.slack.approvers == ["U1"]


def test_file_kubeconfig_wins_over_env(tmp_path) -> None:
    path = write(tmp_path, "kubeconfig: /etc/netcheck/kubeconfig\n")
    assert str(load(path, env={"KUBECONFIG": "/other"}).kubeconfig) == "/etc/netcheck/kubeconfig"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ssh: {port: abc}\n", "config error: ssh.port: Input should be a valid integer"),
        ("ssh: {prot: 22}\n", "config error: ssh.prot: unknown key"),
        ("sshh: {}\n", "config error: sshh: unknown key"),
        ("ssh: {hosts: {'Worker 2': {host: x}}}\n",
         "config error: ssh.hosts: invalid node name"),
        ("cluster: {pod_cidr: 10.244.0.1/16}\n", "config error: cluster.pod_cidr: invalid CIDR"),
        ("cluster: {pod_cidr: 0.0.0.0/0}\n",
         "config error: cluster.pod_cidr: invalid CIDR '0.0.0.0/0': a prefix-0"),
        ("ssh: {hosts: {worker2: {host: 'node2; touch /tmp/x'}}}\n",
         "config error: ssh.hosts.worker2.host: invalid host 'node2; touch /tmp/x'"),
        ("ssh: {hosts: {worker2: {host: \"10.0.0.5\\n\"}}}\n",
         "config error: ssh.hosts.worker2.host: invalid"),
        ("ssh: {user: 'root -oProxyCommand=x'}\n", "config error: ssh.user: invalid SSH user"),
        ("probes: {disabled: ['no-such-probe; touch /tmp/x']}\n",
         "config error: probes.disabled: unknown probe id 'no-such-probe; touch /tmp/x'; closest: "),
        ("probes: {disabled: [pod-apii]}\n", "config error: probes.disabled: unknown probe id 'pod-apii'; "
         "closest: pod-api"),
        ("probes: {timeouts: {mtuu: 5}}\n",
         "config error: probes.timeouts: unknown probe id 'mtuu'; closest: mtu"),
        ("probes: {timeouts: {mtu: -5}}\n", "config error: probes.timeouts.mtu: Input should be greater"),
        ("slack: {probes: [host-apy]}\n", "config error: slack.probes: unknown probe id 'host-apy'; "
         "closest: host-api"),
        ("slack: {approvers: ['U1> <!channel']}\n", "config error: slack.approvers: invalid Slack user id"),
        ("slack: {allowed_channels: ['#general']}\n", "config error: slack.allowed_channels: invalid Slack"),
        ("slack: {approver_group: 'U0NOTAGROUP'}\n",
         "config error: slack.approver_group: invalid Slack user"),
        ("probes: {default_timeout: -1}\n", "config error: probes.default_timeout: Input should be greater"),
        ("ssh: [1, 2\n", "line "),
        ("log_level: loud\n", "config error: log_level: Input should be 'debug', 'info', 'warning' or"),
        ("debug_pod: {memory_limit: lots}\n", "config error: debug_pod.memory_limit: String should match"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_join_channel_is_an_id_not_a_name(tmp_path) -> None:
    config = load(write(tmp_path, "slack: {join_channel: C0456, allowed_channels: [C0123]}\n"), env={})
    assert config.slack.join_channel == "C0456" and config.slack.allowed_channels == ["C0123"]
    # a #name would post, but the summary's chat.update and picture upload need the id
    with pytest.raises(ConfigError, match=r"join_channel '#k8s-ops' is a channel name: give the channel id"):
        load(write(tmp_path, "slack: {join_channel: '#k8s-ops'}\n"), env={})


def test_unreadable_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^config error: cannot read .*missing.yaml: No such file"):
        load(tmp_path / "missing.yaml", env={})
