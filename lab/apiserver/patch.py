"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) as the API server applies them."""

from __future__ import annotations

import copy
from typing import Any

from .status import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'jsonpatch: invalid path "{path}"')
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _parent(doc: Any, path: str, op: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise bad_request(f"jsonpatch {op} operation does not apply: doc is missing path: {path}")
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise bad_request(f'jsonpatch {op} operation does not apply: doc is missing path: "{path}"')
    return node, tokens[-1]


def _get(doc: Any, path: str, op: str) -> Any:
    if path == "":
        return doc
    parent, key = _parent(doc, path, op)
    if isinstance(parent, dict) and key in parent:
        return parent[key]
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent[int(key)]
    raise bad_request(f'jsonpatch {op} operation does not apply: doc is missing path: "{path}"')


def _remove(doc: Any, path: str, op: str) -> Any:
    parent, key = _parent(doc, path, op)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent.pop(int(key))
    raise bad_request(f'jsonpatch {op} operation does not apply: doc is missing path: "{path}"')


def _add(doc: Any, path: str, value: Any, op: str) -> None:
    parent, key = _parent(doc, path, op)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list) and key == "-":
        parent.append(value)
    elif isinstance(parent, list) and key.isdigit() and int(key) <= len(parent):
        parent.insert(int(key), value)
    else:
        raise bad_request(f'jsonpatch {op} operation does not apply: doc is missing path: "{path}"')


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for operation in operations:
        op, path = operation.get("op"), operation.get("path", "")
        if op == "add":
            _add(doc, path, copy.deepcopy(operation.get("value")), op)
        elif op == "remove":
            _remove(doc, path, op)
        elif op == "replace":
            _get(doc, path, op)
            _remove(doc, path, op)
            _add(doc, path, copy.deepcopy(operation.get("value")), op)
        elif op == "test":
            if _get(doc, path, op) != operation.get("value"):
                raise ApiError(422, "Invalid", f"Testing value {path} failed")
        elif op in ("move", "copy"):
            value = _get(doc, operation.get("from", ""), op)
            if op == "move":
                _remove(doc, operation.get("from", ""), op)
            _add(doc, path, copy.deepcopy(value), op)
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return doc


def apply_patch(content_type: str, target: dict[str, Any], body: Any, *, custom: bool) -> dict[str, Any]:
    """Patch `target` as kube-apiserver would; strategic merge is treated as merge (no patch-merge keys)."""
    merge_types = ["application/merge-patch+json"]
    if not custom:
        merge_types.append("application/strategic-merge-patch+json")
    if content_type == "application/json-patch+json":
        return json_patch(target, body)
    if content_type in merge_types:
        if not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else "value"
            raise bad_request(
                f"error decoding patch: json: cannot unmarshal {kind} into Go value of type "
                "map[string]interface {}"
            )
        return merge_patch(target, body)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        + ("" if custom else ", application/strategic-merge-patch+json"),
    )
