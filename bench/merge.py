"""`python -m bench.merge OUT RESULT.json...`: one results file from several partial `bench/run` runs.

Used by hand to make bench/latest.json when the stages were run separately (`bench/run --stages`):
later files win for one_node, startup, fleet_one and slack*, fleet rows are concatenated
(deduplicated by nodes and bound, later wins), and `sources` lists the inputs. Same machine and
delay are required.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def merge(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    if not results:
        raise ValueError("nothing to merge")
    first = results[0]
    for r in results[1:]:
        if r["machine"] != first["machine"] or r["delay_ms"] != first["delay_ms"]:
            raise ValueError("results come from different machines or delays")
    out: dict[str, Any] = {"started_at": first["started_at"], "machine": first["machine"],
                           "delay_ms": first["delay_ms"], "sources": names,
                           "load_at_start": first.get("load_at_start", [0.0, 0.0, 0.0]),
                           "goals": first.get("goals")}
    fleet: dict[tuple[int, int], dict[str, Any]] = {}
    for r in results:
        for row in r.get("fleet", []):
            fleet[(row["nodes"], row.get("max_nodes_in_parallel", 4))] = row  # a later run wins
        for key, value in r.items():
            if key in ("one_node", "startup", "fleet_one", "load_at_end") or key.startswith("slack"):
                out[key] = value
    out["fleet"] = [fleet[k] for k in sorted(fleet)]
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m bench.merge OUT RESULT.json...", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args[1:]]
    merged = merge([json.loads(p.read_text()) for p in paths], [p.name for p in paths])
    Path(args[0]).write_text(json.dumps(merged, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
