"""The Installation's spec.calicoNetwork.mtu: read it, and reject a non-integer as the CRD schema does."""

from __future__ import annotations

import json
from typing import Any

from .status import ApiError

JSON_TYPE_NAMES = {
    str: "string",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


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
