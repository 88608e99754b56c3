"""Adding a probe or a fix is one module and one import line: nothing else lists them.

A temporary package stands in for the catalogs: one probe module (`ntp-sync`), one fix module
(`ntp-enable`, proposed by that probe) and an `__init__.py` with one import line each, as they would
be appended to `probes/catalog/__init__.py` and `fixes/catalog/__init__.py`. In a fresh interpreter
(the registries are process-wide) the package is imported after the real catalogs, and then, with no
other file touched:

- the registries accept both (import-time checks: the probe's `fixes=` names a registered fix, the fix
  addresses a registered probe that proposes it);
- the engine runs the probe on a node and it proposes the fix; the fix runner plans, applies and
  verifies it through the engine (the node's clock is NTP-synchronized afterwards);
- `netcheck check --help` and `netcheck fix --help` list the new ids;
- the generated docs/probes.md and docs/fixes.md catalogs carry them, the fix with its proposer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE_MODULE = '''
"""Probe `ntp-sync`: the node's clock is NTP-synchronized."""

from probes.context import ProbeContext
from probes.model import FixProposal, Layer, ProbeResult, fail, ok
from probes.registry import probe


@probe(id="ntp-sync", layer=Layer.HOST_ROUTE, needs={"host"}, fixes=("ntp-enable",))
async def ntp_sync(ctx: ProbeContext) -> ProbeResult:
    """Node clock: NTP-synchronized (a skewed clock makes TLS to the API server fail)."""
    answer = await ctx.host.run("timedatectl show -p NTPSynchronized --value",
                                timeout=ctx.settings.command_timeout)
    if answer.stdout.strip() == "yes":
        return ok("NTP synchronized")
    return fail("clock not NTP-synchronized", evidence=answer.output,
                remediation="timedatectl set-ntp true", fix=FixProposal(id="ntp-enable", params={}))
'''

FIX_MODULE = '''
"""Fix `ntp-enable`: turn NTP synchronization on."""

from fixes.base import Fix
from fixes.model import Plan
from fixes.registry import fix


@fix(id="ntp-enable", addresses="ntp-sync")
class NtpEnable(Fix):
    """Turns NTP synchronization on (`timedatectl set-ntp true`).

    Verified when the node's clock reports NTP-synchronized. Rollback: `timedatectl set-ntp false`.
    """

    async def plan(self, params):
        return Plan(fix=self.id, node=self.node, params={}, summary=f"Enable NTP on {self.node}.",
                    change="timedatectl set-ntp true")

    async def is_applied(self, plan):
        return (await self.run("timedatectl show -p NTPSynchronized --value")).stdout.strip() == "yes"

    async def snapshot(self, plan):
        return {"ntp": await self.is_applied(plan)}

    async def apply(self, plan, approval):
        await self.run("timedatectl set-ntp true")
        return {"ntp": True}

    async def check_applied(self, plan):
        return []

    async def rollback(self, plan, before):
        await self.run("timedatectl set-ntp false")
        return {"ntp": False}
'''

DRIVER = '''
import asyncio, contextlib, io, json, sys
from datetime import UTC, datetime

import probes.catalog, fixes.catalog  # the real catalogs
import sitechecks  # the two import lines
from probes.registry import default_registry as probe_registry
from fixes.registry import default_registry as fix_registry

probe_registry.validate()
fix_registry.validate()

from bot import docs
from bot.cli import build_parser
from fixes.model import Approval
from fixes.runner import FixRunner
from probes.engine import Engine, Transports
from probes.facts import ClusterFacts, NodeFacts
from probes.settings import ProbeSettings
from probes.transports.base import CommandResult


class Node:
    """A node whose clock syncs once `timedatectl set-ntp true` ran."""

    def __init__(self, name):
        self.node, self.ntp = name, False

    async def run(self, command, *, timeout=None):
        if command == "timedatectl set-ntp true":
            self.ntp = True
        elif command == "timedatectl set-ntp false":
            self.ntp = False
        elif command != "timedatectl show -p NTPSynchronized --value":
            return CommandResult(command=command, exit_status=127, stderr="unknown")
        return CommandResult(command=command, exit_status=0, stdout="yes\\n" if self.ntp else "no\\n")


node = Node("edge-7")


class Shells:
    async def get(self, facts):
        return node

    async def aclose(self):
        pass


async def discover():
    return ClusterFacts(api_service_ip="10.43.0.1", nodes=[NodeFacts(name=node.node, ready=True)])


async def main():
    engine = Engine(transports=Transports(cluster=None, discover=discover, shells=Shells()),
                    settings=ProbeSettings(follow_up=False))
    finding = (await engine.check(node.node, probes=["ntp-sync"])).finding("ntp-sync")
    runner = FixRunner(engine)
    approval = Approval(approver="ops", approved_at=datetime.now(UTC), requested_by="dev")
    result = await runner.apply(node.node, finding.fix.id, dict(finding.fix.params), approval)
    return finding, result


finding, result = asyncio.run(main())
helps = {}
for command in ("check", "fix"):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args([command, "--help"])
    helps[command] = " ".join(out.getvalue().split())
pages = {page: docs.render(page, (docs.ROOT / page).read_text())
         for page in ("docs/probes.md", "docs/fixes.md")}
print(json.dumps({
    "status": finding.status.value, "proposed": finding.fix.id if finding.fix else None,
    "outcome": result.outcome.value, "verified": [f.status.value for f in result.verification],
    "ntp": node.ntp, "helps": helps, "pages": pages,
}))
'''


def test_a_probe_and_a_fix_are_one_module_and_one_import_line_each(tmp_path: Path) -> None:
    package = tmp_path / "sitechecks"
    package.mkdir()
    (package / "ntp_sync.py").write_text(textwrap.dedent(PROBE_MODULE))
    (package / "ntp_enable.py").write_text(textwrap.dedent(FIX_MODULE))
    (package / "__init__.py").write_text("from sitechecks import ntp_sync  # noqa: F401\n"
                                         "from sitechecks import ntp_enable  # noqa: F401\n")
    (tmp_path / "drive.py").write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, str(tmp_path / "drive.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])

    assert (seen["status"], seen["proposed"]) == ("fail", "ntp-enable")
    assert (seen["outcome"], seen["verified"], seen["ntp"]) == ("applied", ["ok"], True)
    assert "ntp-sync" in seen["helps"]["check"] and "ntp-enable" in seen["helps"]["fix"]
    probes_page, fixes_page = seen["pages"]["docs/probes.md"], seen["pages"]["docs/fixes.md"]
    assert "| `ntp-sync` | host-route | host | Node clock: NTP-synchronized" in probes_page
    assert "May propose: `ntp-enable`." in probes_page
    assert "| `ntp-enable` | `ntp-sync` | `ntp-sync` | Turns NTP synchronization on" in fixes_page
    # and nothing in the checkout was touched: the pages on disk do not carry them
    assert "ntp-sync" not in (ROOT / "docs/probes.md").read_text()
