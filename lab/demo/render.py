"""The Slack conversation as terminal text: a message's Block Kit blocks (header, section, context,
actions) turned into readable lines — emoji shortcodes as symbols, user mentions as @names, mrkdwn
entities unescaped, code blocks indented, buttons as `[ Apply fix: masquerade ]`, thread replies
indented under their parent. Optional ANSI colour: ok lines green, problems red, warnings yellow.

Pure functions over `lab.slack.webapi.Message`-shaped data; used by lab.demo.feed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

EMOJI = {
    ":white_check_mark:": "✔", ":x:": "✖", ":warning:": "⚠", ":boom:": "✖", ":fast_forward:": "»",
    ":hourglass_flowing_sand:": "…", ":information_source:": "i", ":mag:": "?",
    ":wrench:": "▶", ":link:": "↪", ":scales:": "≠",
    ":rotating_light:": "🚨", ":large_yellow_circle:": "◐", ":white_circle:": "○",
}
OK_MARK, PROBLEM_MARKS, WARN_MARK = "✔", ("✖",), "⚠"
CODE_LINES_SHOWN = 8
"""Evidence blocks longer than this show their head and a count (the full text is in the thread)."""

GREEN, RED, YELLOW, BOLD, DIM, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[1m", "\x1b[2m", "\x1b[0m"
BOLD_OFF = "\x1b[22m"  # ends bold only, so a line's status colour goes on after a bold word
PARENT_INDENT = "  "
REPLY_INDENT = "      │ "

_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")


class Renderer:
    def __init__(self, user_names: Mapping[str, str], *, color: bool = False) -> None:
        self.user_names = dict(user_names)
        self.color = color

    # ---- inline text
    def inline(self, text: str) -> str:
        for code, symbol in EMOJI.items():
            text = text.replace(code, symbol)
        text = _MENTION.sub(lambda m: "@" + self.user_names.get(m.group(1), m.group(1)), text)
        text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
        text = _BOLD.sub(lambda m: f"{BOLD}{m.group(1)}{BOLD_OFF}" if self.color else m.group(1), text)
        text = _ITALIC.sub(lambda m: m.group(1), text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    def _status_colour(self, line: str) -> str:
        """A line's colour follows its first status mark ('re-check after fix: ✔ …' is green)."""
        marks = {OK_MARK: GREEN, WARN_MARK: YELLOW, **{m: RED for m in PROBLEM_MARKS}}
        found = sorted((line.find(m), colour) for m, colour in marks.items() if m in line)
        return self._paint(found[0][1], line) if found else line

    # ---- mrkdwn with code blocks
    def mrkdwn(self, text: str) -> list[str]:
        lines: list[str] = []
        for index, chunk in enumerate(text.split("```")):
            if index % 2 == 1:  # inside a code block: verbatim, indented, head kept
                code = chunk.strip("\n").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                code_lines = code.splitlines()
                shown = code_lines[:CODE_LINES_SHOWN]
                lines += [self._paint(DIM, "    " + line) for line in shown]
                if len(code_lines) > len(shown):
                    lines.append(self._paint(DIM, f"    … ({len(code_lines) - len(shown)} more lines)"))
            else:
                lines += [self._status_colour(self.inline(line)) for line in chunk.strip("\n").splitlines()]
        return lines

    # ---- blocks
    def block(self, block: Mapping[str, Any]) -> list[str]:
        kind = block.get("type")
        if kind == "header":
            return [self._paint(BOLD, block["text"]["text"])]
        if kind == "section":
            lines = self.mrkdwn(block.get("text", {}).get("text", "")) if block.get("text") else []
            for field in block.get("fields", []):
                lines += self.mrkdwn(field.get("text", ""))
            return lines
        if kind == "context":
            return [self._paint(DIM, " ".join(self.inline(el.get("text", "")) for el in block["elements"]))]
        if kind == "actions":
            return ["  ".join(self.button(el) for el in block.get("elements", []))]
        if kind == "divider":
            return ["—" * 20]
        return [f"[{kind} block]"]

    def button(self, element: Mapping[str, Any]) -> str:
        label = f"[ {element.get('text', {}).get('text', '?')} ]"
        if element.get("confirm"):
            label += " (asks to confirm)"
        return self._paint(BOLD, label)

    def body(self, text: str, blocks: list[dict[str, Any]]) -> list[str]:
        """A message's lines: its blocks, or its text when it has none (Slack's fallback too)."""
        if not blocks:
            return self.mrkdwn(text)
        return [line for block in blocks for line in self.block(block)]

    def message(self, text: str, blocks: list[dict[str, Any]], *, reply: bool) -> str:
        indent = REPLY_INDENT if reply else PARENT_INDENT
        return "\n".join(indent + line for line in self.body(text, blocks))
