"""After an Installation's spec.calicoNetwork.mtu changes: run the configured hook with the new MTU."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .state import State
from .status import ApiError

MTU_HOOK_SECONDS = 60.0
JSON_TYPE_NAMES = {
    str: "string",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


async def run_mtu_hook(state: State, mtu: int) -> None:
    """Run mtu_hook + [MTU], bounded; failures are logged, not raised: the object is already stored."""
    hook = state.config.mtu_hook
    if not hook:
        return
    try:
        process = await asyncio.create_subprocess_exec(
            *hook, str(mtu), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as exc:
        print(f"apiserver: mtu hook could not start: {exc}", file=sys.stderr)
        return
    try:
        output, _ = await asyncio.wait_for(process.communicate(), MTU_HOOK_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        print(f"apiserver: mtu hook timed out after {MTU_HOOK_SECONDS}s", file=sys.stderr)
        return
    if process.returncode:
        print(
            f"apiserver: mtu hook exited {process.returncode}: {output.decode(errors='replace')}",
            file=sys.stderr,
        )


def calico_mtu(installation: dict[str, Any]) -> Any:
    return ((installation.get("spec") or {}).get("calicoNetwork") or {}).get("mtu")


def validate(value: Any, name: str) -> None:
    """The Installation CRD schema types mtu as an integer; anything else is rejected as Invalid (422)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return
    shown = json.dumps(value)
    message = (
        f'Installation.operator.tigera.io "{name}" is invalid: spec.calicoNetwork.mtu: Invalid value: '
        f'"{JSON_TYPE_NAMES.get(type(value), "object")}": '
        f"spec.calicoNetwork.mtu in body must be of type integer: {shown}"
    )
    raise ApiError(
        422, "Invalid", message, {"name": name, "group": "operator.tigera.io", "kind": "Installation"}
    )
