"""Fix `etc-hosts`: add the cluster nodes missing from the node's /etc/hosts in a marked block.

Proposed by the `etc-hosts` probe with no parameters: the entries are recomputed from the
cluster facts (node name -> InternalIP) at plan time, so a Slack button carries no data. The block
sits between `# BEGIN netcheck` and `# END netcheck`; the file is rewritten in place (in the lab
/etc/hosts is a bind mount, which a rename would break). Rollback writes the previous text back,
keeping lines someone else added outside the block in the meantime.
"""

from __future__ import annotations

from typing import Any

from fixes.base import Fix, FixFailed
from fixes.model import Approval, Plan
from fixes.registry import fix
from probes.errors import InvalidInput
from probes.transports.commands import ipv4, node_name

HOSTS = "/etc/hosts"
BEGIN, END = "# BEGIN netcheck", "# END netcheck"


def without_block(text: str) -> str:
    """The hosts text with netcheck's block (if any) cut out."""
    lines = text.splitlines(keepends=True)
    if not any(line.strip() == BEGIN for line in lines):
        return text
    kept, inside = [], False
    for line in lines:
        if line.strip() == BEGIN:
            inside = True
        elif inside and line.strip() == END:
            inside = False
        elif not inside:
            kept.append(line)
    return "".join(kept)


def names_present(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names.update(fields[1:])
    return names


def with_block(text: str, entries: list[tuple[str, str]]) -> str:
    base = without_block(text)
    if not entries:
        return base
    if base and not base.endswith("\n"):
        base += "\n"
    block = [BEGIN, *(f"{address} {name}" for name, address in entries), END]
    return base + "\n".join(block) + "\n"


@fix(id="etc-hosts", addresses="etc-hosts", verify=("etc-hosts",))
class EtcHosts(Fix):
    """Adds the missing nodes to `/etc/hosts`, in a `# BEGIN netcheck` / `# END netcheck` block.

    Proposed when every missing node has an InternalIP; the entries are listed in the confirm dialog.

    Verified when every node name resolves.

    Rollback: removes the block (lines others added outside it stay).
    """

    async def _wanted(self) -> list[tuple[str, str]]:
        """(name, address) of every cluster node with an InternalIP, validated."""
        facts = await self.engine.facts()
        return sorted(
            (node_name(n.name).value, ipv4(n.internal_ip).value) for n in facts.nodes if n.internal_ip
        )

    async def _missing(self, current: str) -> list[tuple[str, str]]:
        present = names_present(without_block(current))
        return [(name, address) for name, address in await self._wanted() if name not in present]

    async def _hosts(self) -> str:
        text = await self.read_file(HOSTS)
        if text is None:
            raise FixFailed(f"{HOSTS} does not exist on {self.node}")
        return text

    async def plan(self, params: dict[str, str | int]) -> Plan:
        if params:
            raise InvalidInput("etc-hosts takes no parameters; entries come from the cluster "
                               f"(got {sorted(params)})")
        missing = await self._missing(await self._hosts())
        block = "\n".join([BEGIN, *(f"{a} {n}" for n, a in missing), END])
        entries = ", ".join(f"{a} {n}" for n, a in missing) or "none"
        return Plan(
            fix=self.id, node=self.node, params={},
            summary=f"Add the cluster nodes missing from {HOSTS} on {self.node}: {entries}"[:300],
            change=f"Rewrite {HOSTS} in place with this block "
                   f"(replacing any earlier netcheck block):\n{block}",
        )

    async def is_applied(self, plan: Plan) -> bool:
        current = await self._hosts()
        return not await self._missing(current) and current == with_block(current, self._block_of(current))

    @staticmethod
    def _block_of(text: str) -> list[tuple[str, str]]:
        entries, inside = [], False
        for line in text.splitlines():
            if line.strip() == BEGIN:
                inside = True
            elif line.strip() == END:
                inside = False
            elif inside and len(line.split()) == 2:
                address, name = line.split()
                entries.append((name, address))
        return entries

    async def snapshot(self, plan: Plan) -> dict[str, Any]:
        return {"hosts": await self._hosts()}

    async def apply(self, plan: Plan, approval: Approval) -> dict[str, Any]:
        current = await self._hosts()
        keep = [e for e in self._block_of(current) if e[0] not in names_present(without_block(current))]
        entries = sorted(set(keep) | set(await self._missing(current)))
        new = with_block(current, entries)
        await self.write_file(HOSTS, new)
        return {"hosts": new}

    async def check_applied(self, plan: Plan) -> list[str]:
        current = await self._hosts()
        present = names_present(current)
        wanted = await self._wanted()
        return [f"{name} is still missing from {HOSTS}" for name, _ in wanted if name not in present]

    async def rollback(self, plan: Plan, before: dict[str, Any]) -> dict[str, Any]:
        previous: str = before["hosts"]
        current = await self._hosts()
        if without_block(current) == without_block(previous):
            restored = previous  # nobody else edited the file since: put back the exact text
        else:  # someone edited outside our block meanwhile: keep their lines, restore only our block
            restored = with_block(current, self._block_of(previous))
        await self.write_file(HOSTS, restored)
        return {"hosts": await self._hosts()}
