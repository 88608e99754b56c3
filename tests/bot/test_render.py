"""The terminal rendering of one node's check with the peers it looked at (bot/render.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.render import render_report
from probes.model import CauseRef, Finding, FixProposal, Layer, Report, Status
from tests.fakes.engine import broken_findings


def _report(node: str, findings: list[Finding]) -> Report:
    return Report(node=node, started_at=datetime.now(UTC), duration_s=1.0, findings=findings)


def test_a_check_lists_only_what_concerns_its_node_as_things_to_do() -> None:
    """A reference node with a problem of its own is named in one line (with the command for its
    own check); a blamed peer whose cause explains a problem here is a thing to do."""
    reference = _report("ref-3", [
        Finding(probe="ip-forward", layer=Layer.HOST_ROUTE, status=Status.FAIL, summary="ip_forward = 0",
                fix=FixProposal(id="ip-forward", params={})),
        Finding(probe="pod-dns", layer=Layer.POD_APP, status=Status.FAIL, summary="no DNS",
                caused_by="ip-forward"),
    ])
    blamed = _report("gw-1", [Finding(probe="return-path", layer=Layer.HOST_ROUTE, status=Status.FAIL,
                                      summary="no route back",
                                      fix=FixProposal(id="return-route", params={}))])
    here = _report("edge-7", [*broken_findings(), Finding(
        probe="pod-routes", layer=Layer.POD_APP, status=Status.FAIL, summary="no way out",
        caused_by_node=CauseRef(node="gw-1", probe="return-path"))])
    text = render_report(here.model_copy(update={"peers": [reference, blamed], "reference": "ref-3"}))

    assert "2 things to do" in text
    assert "on edge-7: masquerade" in text and "on gw-1: return-route" in text
    assert "on ref-3: ip-forward" not in text  # not a thing to do for edge-7
    assert ("also seen on the nodes compared with, behind no problem of edge-7's: ref-3: ip-forward "
            "(netcheck check ref-3)") in text
    consequences = text.split("consequences (no fix of their own):")[1]
    assert "edge-7/pod-api" in consequences and "edge-7/pod-routes" in consequences
    assert "ref-3/pod-dns" not in consequences
