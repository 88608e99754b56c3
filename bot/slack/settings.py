"""Slack settings of `netcheck serve` (tokens from the environment, policy from the config file).

Read by `bot/config.py` (the root `Config.slack` field, which also fills the SLACK_* variables in)
and by `bot/slack/app.py::build_app`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from probes.errors import InvalidInput
from probes.transports.commands import slack_id

CHANNEL_NAME = re.compile(r"#[a-z0-9][a-z0-9._-]{0,79}")
"""A `#channel-name` as Slack spells one (lowercase, digits, `-`, `_`, `.`; at most 80)."""


class SlackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: SecretStr | None = Field(None, description="xoxb- bot token (env SLACK_BOT_TOKEN).")
    signing_secret: SecretStr | None = Field(
        None, description="Signs HTTP requests and fix-button values (env SLACK_SIGNING_SECRET)."
    )
    app_token: SecretStr | None = Field(
        None, description="xapp- app-level token; when set, `serve` uses Socket Mode (env SLACK_APP_TOKEN)."
    )
    api_url: str | None = Field(
        None, description="Web API base URL, e.g. a Slack-compatible endpoint (env SLACK_API_URL)."
    )
    join_channel: str | None = Field(None, description="Channel id for node-join summaries (None: off).")
    approvers: list[str] = Field(default_factory=list, description="User ids allowed to approve fixes.")
    approver_group: str | None = Field(None, description="User group id (S…) whose members may approve.")
    approver_group_cache_s: float = Field(
        300.0, gt=0, description="Seconds a usergroups.users.list answer is reused."
    )
    allow_self_approval: bool = Field(False, description="May the requester approve their own fix?")
    proposal_ttl_minutes: float = Field(30.0, gt=0, description="How long a fix button stays valid.")
    allowed_channels: list[str] = Field(default_factory=list, description="Channel ids; empty means any.")
    probes: list[str] | None = Field(None, description="Probe ids the bot runs; None: every probe.")
    rate_limit_retries: int = Field(3, ge=0, description="Retries of a Web API call answered with 429.")
    server_error_retries: int = Field(
        4, ge=0, description="Retries of a Web API call answered with 5xx, internal_error, "
        "service_unavailable, fatal_error or request_timeout, or whose connection dropped (a post is "
        "first looked up: no duplicates).",
    )
    server_error_backoff_s: float = Field(
        0.5, gt=0, description="Backoff factor of those retries: about 0.5, 1, 2, 4 s apart, with jitter.",
    )
    watch_retry_s: float = Field(2.0, gt=0, description="Seconds before re-opening a failed node watch.")
    pictures: bool = Field(
        True, description="Upload each check's layer picture into its thread (needs the files:write scope).",
    )
    max_request_bytes: int = Field(
        256 * 1024, ge=16 * 1024, le=16 * 1024 * 1024,
        description="Largest HTTP-mode request body read (413 above): a click carries its message's blocks, "
        "which Slack caps far below this.",
    )
    max_concurrent_checks: int = Field(
        4, ge=1, le=64,
        description="Node checks Slack commands run at once, also the nodes `/netcheck all` checks at once; "
        "more wait (acks stay fast on small machines).",
    )

    @field_validator("approvers")
    @classmethod
    def _user_ids(cls, values: list[str]) -> list[str]:
        return [_valid(value, "Slack user id") for value in values]

    @field_validator("allowed_channels")
    @classmethod
    def _channel_ids(cls, values: list[str]) -> list[str]:
        return [_valid(value, "Slack channel id") for value in values]

    @field_validator("join_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and CHANNEL_NAME.fullmatch(value):
            # chat.postMessage takes a #name, but chat.update and file uploads take only the id, so
            # the summary's later edits would fail (docs/slack.md, "Slash commands": channel ids)
            raise ValueError(f"join_channel {value!r} is a channel name: give the channel id "
                             "(C…; in Slack: the channel's details, at the bottom)")
        return None if value is None else _valid(value, "Slack channel id")

    @field_validator("approver_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else _valid(value, "Slack user group id")

    def secret(self) -> str:
        return self.signing_secret.get_secret_value() if self.signing_secret else ""


def _valid(value: str, kind: str) -> str:
    """The value through the validator module, as pydantic wants a failure (ValueError, one line)."""
    try:
        return slack_id(value, kind).value
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
