"""Who may approve a fix, and the signed fix-button value.

The button value carries everything a click needs (node, fix, params, proposed_at, requester and the
parent thread), signed with HMAC-SHA256 under the signing secret, so a restart between check and click
still works and an edited value is refused. `ProposalLedger` makes a proposal apply once: Bolt accepts
byte-identical replays, and two clicks can both arrive before chat.update removes the button.
Used by `threads.py` (a proposal per fix button), `blocks.py` (encode), `actions.py` (decode, decide,
claim) and `app.py` (the approvers and the ledger of the bot's runtime).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.slack.settings import SlackSettings

log = structlog.get_logger("netcheck.slack.approvals")

VALUE_LIMIT = 2000


class Proposal(BaseModel):
    """A fix offered in a thread. In the button value each field goes by a one- or two-letter alias
    (`n`, `f`, …): Slack caps the value at 2000 characters, and buttons posted before a restart
    keep working."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    node: str = Field(alias="n")
    fix: str = Field(alias="f")
    """The fix id."""
    params: dict[str, str | int] = Field(alias="p")
    proposed_at: int = Field(alias="t")
    """Unix seconds."""
    requested_by: str = Field(alias="r")
    """The Slack user id who asked for the check."""
    channel: str = Field(alias="c")
    thread_ts: str = Field(alias="th")
    """The ts of the check's parent message."""

    @property
    def key(self) -> str:
        """The de-duplication key: identical for every copy of the same button."""
        return hashlib.sha256(self._canonical().encode()).hexdigest()[:32]

    def _canonical(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), sort_keys=True, separators=(",", ":"))


class InvalidValue(ValueError):
    """The button value is malformed or its signature does not match."""


def _sign(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def encode(proposal: Proposal, secret: str) -> str:
    body = proposal._canonical()
    return json.dumps({"v": body, "s": _sign(secret, body)}, separators=(",", ":"))


def decode(value: str, secret: str) -> Proposal:
    try:
        wrapper = json.loads(value)
        body, signature = wrapper["v"], wrapper["s"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidValue("malformed button value") from exc
    if not isinstance(body, str) or not isinstance(signature, str):
        raise InvalidValue("malformed button value")
    if not hmac.compare_digest(_sign(secret, body), signature):
        raise InvalidValue("button value signature mismatch")
    try:
        return Proposal.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidValue("malformed proposal") from exc


class Decision(StrEnum):
    APPROVED = "approved"
    NOT_APPROVER = "not-approver"
    SELF_APPROVAL = "self-approval"
    EXPIRED = "expired"


GroupMembers = Callable[[str], Awaitable[list[str]]]


class Approvers:
    """Approver policy: listed users plus a user group (membership cached), self-approval, expiry."""

    def __init__(self, settings: SlackSettings, group_members: GroupMembers, clock=time.time) -> None:
        self._settings = settings
        self._group_members = group_members
        self._clock = clock
        self._cache: tuple[float, frozenset[str]] | None = None

    async def members(self) -> frozenset[str]:
        users = set(self._settings.approvers)
        group = self._settings.approver_group
        if group:
            now = self._clock()
            if self._cache is None or now - self._cache[0] > self._settings.approver_group_cache_s:
                try:
                    self._cache = (now, frozenset(await self._group_members(group)))
                except Exception as exc:  # Slack down or no plan for groups: listed approvers still work
                    log.error("approver_group_failed", group=group, error=str(exc))
                    return frozenset(users)
            users |= self._cache[1]
        return frozenset(users)

    def hint(self) -> str:
        named = [f"<@{u}>" for u in self._settings.approvers]
        if self._settings.approver_group:
            named.append(f"<!subteam^{self._settings.approver_group}>")
        return ", ".join(named) or "an admin to configure approvers"

    async def decide(self, proposal: Proposal, clicker: str) -> Decision:
        if self._clock() - proposal.proposed_at > self._settings.proposal_ttl_minutes * 60:
            return Decision.EXPIRED
        if clicker not in await self.members():
            return Decision.NOT_APPROVER
        if clicker == proposal.requested_by and not self._settings.allow_self_approval:
            return Decision.SELF_APPROVAL
        return Decision.APPROVED


class ProposalLedger:
    """Proposals already claimed by an approved click; a second claim of the same key fails.

    Entries older than the proposal lifetime are dropped: such a proposal is refused as expired anyway.
    """

    def __init__(self, ttl_s: float, clock=time.time) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._claimed: dict[str, float] = {}

    def claim(self, key: str) -> bool:
        now = self._clock()
        self._claimed = {k: t for k, t in self._claimed.items() if now - t <= 2 * self._ttl_s}
        if key in self._claimed:
            return False
        self._claimed[key] = now
        return True
