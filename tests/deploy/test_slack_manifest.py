"""deploy/slack-app-manifest.yaml: structure and the limits of Slack's manifest schema 1.0.0
(docs/slack.md#app-manifest-and-scopes), and that the bot scopes are exactly those the code needs.

Covers: required sections; /netcheck command (2–32 chars, leading slash), description ≤2000,
usage_hint "<node> | all | help" ≤1000; bot display_name ≤80; interactivity on; Socket Mode on;
the Home tab on and app_home_opened the only event subscribed to; scopes exactly commands, chat:write,
chat:write.public, usergroups:read, channels:history, groups:history (the delivery check of a
retried post), files:write (a check's full evidence as a file, the layer picture); and each Web API
method the bot/slack code calls is covered.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY, ROOT

MANIFEST = DEPLOY / "slack-app-manifest.yaml"
EXPECTED_SCOPES = {"commands", "chat:write", "chat:write.public", "usergroups:read", "channels:history",
                   "groups:history", "files:write"}
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
    "usergroups_users_list": "usergroups:read",
    "conversations.replies": "channels:history",
    "conversations.history": "groups:history",  # private channels; channels:history for public ones
    "files_upload_v2": "files:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
KNOWN_TOP_LEVEL = {"_metadata", "display_information", "features", "oauth_config", "settings", "functions",
                   "workflows", "outgoing_domains", "types"}


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_structure_and_limits():
    data = manifest()
    assert set(data) <= KNOWN_TOP_LEVEL
    assert 1 <= len(data["display_information"]["name"]) <= 35
    assert len(data["display_information"].get("description", "")) <= 140
    bot_user = data["features"]["bot_user"]
    assert 1 <= len(bot_user["display_name"]) <= 80
    commands = data["features"]["slash_commands"]
    assert 1 <= len(commands) <= 50
    (command,) = commands
    assert re.fullmatch(r"/[^\s]{1,31}", command["command"]) and command["command"] == "/netcheck"
    assert 1 <= len(command["description"]) <= 2000
    assert command["usage_hint"] == "<node> | all | help" and len(command["usage_hint"]) <= 1000
    assert command["should_escape"] is False
    settings = data["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["interactivity"] and "url" not in command  # Socket Mode
    assert settings["event_subscriptions"] == {"bot_events": ["app_home_opened"]}  # the Home tab only
    assert "request_url" not in settings["event_subscriptions"]  # Socket Mode delivers the events
    home = data["features"]["app_home"]
    assert home["home_tab_enabled"] is True and home["messages_tab_enabled"] is False


def test_scopes_are_exactly_what_the_code_calls():
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == EXPECTED_SCOPES
    code = "\n".join(p.read_text() for p in Path(ROOT / "bot" / "slack").glob("*.py"))
    used = {scope for method, scope in METHOD_SCOPES.items() if method in code}
    assert used <= set(scopes), f"the code calls methods needing {used - set(scopes)}"
    if (ROOT / "bot" / "slack" / "commands.py").exists():
        assert '"/netcheck"' in code  # the slash command the manifest declares
