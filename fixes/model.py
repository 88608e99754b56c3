"""The typed values of the fixes layer: a `Plan` shown to the approver, the `Approval` that
unlocks `apply`, and the `FixResult` the runner hands back to the CLI and the Slack bot.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from probes.model import Finding

SUMMARY_LIMIT = 300
"""Characters a plan summary may have: it is the text of a Slack confirm dialog."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Plan(_Frozen):
    """Exactly what a fix will change on which node, built before anything runs."""

    fix: str
    node: str
    params: dict[str, str | int]
    summary: str = Field(max_length=SUMMARY_LIMIT, description="One line for a confirm dialog.")
    change: str = Field(description="The full change: diff, file text and the commands to run.")
    fallback: str = Field("", description="Manual steps shown to the operator, never run.")
    found: dict[str, str] = Field(
        default_factory=dict,
        description="What `plan` read on the node that the later steps need (masquerade: the "
        "iptables binary of the backend in use): a Fix keeps no state between its steps.",
    )

    def render(self) -> str:
        """The plan as text for a terminal or a Slack message."""
        parts = [f"Fix {self.fix} on {self.node}: {self.summary}", "", self.change]
        if self.fallback:
            parts += ["", "Manual fallback (shown only, netcheck never runs it):", self.fallback]
        return "\n".join(parts)


class Approval(_Frozen):
    """Who approved a plan and when; `apply` cannot be called without one."""

    approver: str = Field(min_length=1)
    approved_at: datetime
    requested_by: str = Field(min_length=1)


class Outcome(StrEnum):
    APPLIED = "applied"
    NOTHING_TO_DO = "nothing-to-do"
    ROLLED_BACK = "rolled-back"
    REFUSED = "refused"
    BUSY = "busy"
    FAILED = "failed"


class FixResult(_Frozen):
    outcome: Outcome
    message: str
    plan: Plan | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    verification: list[Finding] = []
    problems: list[str] = Field(default_factory=list, description="Why verification failed.")
