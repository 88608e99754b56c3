"""`netcheck fix` (bot/commands/fix.py) against the fake node/engine.

Covers: --dry-run prints the plan and changes nothing; no terminal and no --yes -> refused (exit
2) with nothing changed; a terminal answer "n" -> not applied; --yes applies and verifies (exit 0);
verification failure -> rolled back (exit 1); bad input -> one line, exit 2; the approver is
user@host; argparse wiring of --param. Errors and refusals go to stderr, the plan and outcome to stdout.
"""

from __future__ import annotations

import argparse
import io

from bot.commands import fix as fix_command
from probes.model import Status
from tests.fakes.engine import FakeEngine
from tests.fixes.fakenode import FakeNode, node_engine

RULE = "POSTROUTING -s 192.168.88.0/24 -o wlp59s0 -j MASQUERADE"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fix_command.add_parser(parser.add_subparsers())
    return parser.parse_args(["fix", *argv])


MASQ_ARGS = ("worker2", "masquerade", "--param", "pod_cidr=192.168.88.0/24", "--param", "interface=wlp59s0")


async def run(
    args: argparse.Namespace, stdin: io.StringIO | None = None
) -> tuple[int, str, FakeNode, FakeEngine]:
    code, out, _err, node, engine = await run_both(args, stdin)
    return code, out, node, engine


async def run_both(
    args: argparse.Namespace, stdin: io.StringIO | None = None
) -> tuple[int, str, str, FakeNode, FakeEngine]:
    node = FakeNode(node="worker2")
    engine = node_engine(node)
    if getattr(args, "_fail", None):
        engine.forced[args._fail] = Status.FAIL
    out, err = io.StringIO(), io.StringIO()
    code = await fix_command.execute(args, engine, stdin=stdin or io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue(), node, engine


async def test_dry_run_prints_the_plan_and_changes_nothing() -> None:
    code, out, node, _ = await run(parse(*MASQ_ARGS, "--dry-run"))
    assert code == 0 and "ExecStart=/bin/sh -c" in out and "nothing was changed" in out
    assert node.changes() == []


async def test_no_terminal_and_no_yes_is_refused() -> None:
    code, out, err, node, _ = await run_both(parse(*MASQ_ARGS))
    assert code == 2 and "no terminal" in err and "no terminal" not in out
    assert node.changes() == [] and node.nat_rules == []


async def test_terminal_no_means_not_applied() -> None:
    code, out, node, _ = await run(parse(*MASQ_ARGS), stdin=Tty("n\n"))
    assert code == 2 and "Not applied" in out and node.changes() == []


async def test_terminal_yes_applies_with_the_local_user_as_approver(capsys) -> None:
    code, out, node, _ = await run(parse(*MASQ_ARGS), stdin=Tty("y\n"))
    assert code == 0, out
    assert "applied:" in out and node.nat_rules == [RULE]
    assert f'"who": "{fix_command.local_approver()}"' in capsys.readouterr().err


async def test_yes_applies_and_failed_verification_exits_1() -> None:
    code, out, node, _ = await run(parse(*MASQ_ARGS, "--yes"))
    assert code == 0 and "masquerade     ok" in out
    args = parse(*MASQ_ARGS, "--yes")
    args._fail = "pod-api"
    code, out, node, _ = await run(args)
    assert code == 1 and "rolled-back:" in out
    assert node.nat_rules == [] and node.files.keys() == {"/etc/hosts"}


async def test_bad_input_is_one_line_and_exit_2() -> None:
    args = parse("worker2", "masquerade", "--param", "pod_cidr=10.0.0.0/8; reboot", "--param",
                 "interface=wlp59s0", "--yes")
    code, out, err, node, engine = await run_both(args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "invalid CIDR" in err
    assert node.ran == [] and engine.checks == []
    code, out, err, node, _ = await run_both(parse("worker2", "calico-mtu", "--param", "mtu", "--yes"))
    assert code == 2 and out == "" and "expected KEY=VALUE" in err and node.ran == []


async def test_a_repeated_param_is_refused_whatever_the_values() -> None:
    """`--param pod_cidr='…; touch …' --param pod_cidr=<the node's block>` must not apply the last one."""
    args = parse("worker2", "masquerade", "--param", "pod_cidr=10.0.0.0/8; touch /tmp/x",
                 "--param", "pod_cidr=192.168.88.0/24", "--param", "interface=wlp59s0", "--yes")
    code, out, err, node, engine = await run_both(args)
    twice = "netcheck fix: --param pod_cidr given twice; give each parameter once\n"
    assert (code, out, err) == (2, "", twice)
    assert node.ran == [] and engine.checks == []


async def test_not_this_nodes_values_are_refused_at_plan_time() -> None:
    for param, error in (("pod_cidr=0.0.0.0/0", "prefix-0"), ("pod_cidr=10.0.0.0/8", "not a pod block"),
                         ("interface=eth0\n", "invalid interface name 'eth0\\n'"),
                         ("interface=eth7", "does not exist on worker2")):
        pairs = {"pod_cidr": "192.168.88.0/24", "interface": "wlp59s0"}
        key, value = param.split("=", 1)
        pairs[key] = value
        argv = [arg for k, v in pairs.items() for arg in ("--param", f"{k}={v}")]
        code, out, err, node, engine = await run_both(parse("worker2", "masquerade", *argv, "--yes"))
        assert code == 2 and out == "" and err.count("\n") == 1 and error in err, err
        assert node.changes() == [] and engine.checks == []
