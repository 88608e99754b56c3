"""Paints the layer picture of one node's report as a PNG (Pillow), from `states` and `values`.

Pure and synchronous: the same report and values give the same bytes. Callers on the event loop use
`render_png_async`, which runs it in a worker thread, so drawing never holds up other checks.
"""

from __future__ import annotations

import asyncio
import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from bot.picture.layout import (
    API_SERVER,
    BOXES,
    FOOTER_TOP,
    HEIGHT,
    HOST_LEG,
    MARGIN,
    POD_LEG,
    SHARED,
    TEXT_INSET,
    WIDTH,
    Box,
)
from bot.picture.states import CauseMark, Shade, box_shades, cause_marks, findings_by_box
from bot.picture.values import NodeValues
from probes.model import Finding, Layer, Report, Status

RGB = tuple[int, int, int]
FILL: dict[Shade, RGB] = {
    Shade.OK: (31, 136, 61),
    Shade.PROBLEM: (207, 34, 46),
    Shade.UNCHECKED: (110, 119, 129),
}
"""Box fills; tests compare the pixel at `Box.sample` with these."""
BACKGROUND: RGB = (255, 255, 255)
INK: RGB = (36, 41, 47)
ON_FILL: RGB = (255, 255, 255)
CAUSE_RING: RGB = (17, 17, 17)
CAUSE_RING_WIDTH = 6
CAUSE_RING_GAP = 4
ARROW: RGB = (140, 149, 159)
LABEL = {Shade.OK: "OK", Shade.PROBLEM: "PROBLEM", Shade.UNCHECKED: "NOT CHECKED"}
MARK = {Status.OK: "ok", Status.SKIP: "skip", Status.WARN: "WARN", Status.ERROR: "ERROR", Status.FAIL: "FAIL"}
API_NOTE = "reached when host-api or pod-api got an answer"
PNG_COMPRESS_LEVEL = 1
"""zlib level: 1 saves about a third of the drawing's CPU against the default 6 for ~15% more bytes."""
FOOTER_CAUSE_LINES = 4
"""At most this many footer lines name causes (more causes: the thread lists them all)."""


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font: no system font needed in the container image
    return ImageFont.load_default(size=size)


GLYPH_STAND_INS = str.maketrans({"→": "->", "←": "<-", "—": "-", "–": "-", "✓": "ok", "✗": "x"})
"""Characters the bundled font has no glyph for (they would print as boxes), and what to draw instead."""


def printable(text: str) -> str:
    return text.translate(GLYPH_STAND_INS)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> str:
    """`text` (made printable) cut with an ellipsis to fit `width` pixels."""
    font = _font(size)
    text = printable(text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _join(*parts: str | None) -> str:
    return " · ".join(p for p in parts if p)


def box_values(key: str, v: NodeValues) -> str:
    """The node's own values for one box (empty when none were learned)."""
    pods = v.pod_ip or (f"a pod in {v.pod_cidr}" if v.pod_cidr else None)
    uplink_mtu = f"MTU {v.uplink_mtu}" if v.uplink_mtu else None
    lines = {
        Layer.POD_APP.value: _join(pods and f"{pods} → {v.api_service or 'the API service'}"),
        Layer.POD_NETWORK.value: _join("eth0", f"pod MTU {v.pod_mtu}" if v.pod_mtu else None),
        Layer.HOST_VETH.value: _join(v.pod_ip and f"route to {v.pod_ip}",
                                     v.pod_cidr and f"pods {v.pod_cidr}"),
        Layer.IPTABLES.value: _join(v.pod_cidr and f"{v.pod_cidr} leaving via {v.uplink or 'the uplink'}"),
        HOST_LEG: _join(v.node_ip and f"{v.node_ip} → {v.api_service or 'the API service'}"),
        Layer.HOST_ROUTE.value: _join(v.api_endpoint and f"toward {v.api_endpoint}"),
        Layer.PHYSICAL.value: _join(v.uplink, uplink_mtu, v.node_ip),
        Layer.ROUTER.value: _join(v.pod_cidr and f"must route replies back to {v.pod_cidr}"),
        API_SERVER: _join(v.api_service and f"service {v.api_service}",
                          v.api_endpoint and f"endpoint {v.api_endpoint}"),
    }
    return lines.get(key, "")


def _probe_line(found: list[Finding]) -> str:
    return " · ".join(f"{f.probe} {MARK[f.status]}" for f in found) or "no probe ran here"


def _arrow(draw: ImageDraw.ImageDraw, x: int, top: int, bottom: int) -> None:
    draw.line([(x, top), (x, bottom - 10)], fill=ARROW, width=4)
    draw.polygon([(x - 9, bottom - 12), (x + 9, bottom - 12), (x, bottom)], fill=ARROW)


def _box(draw: ImageDraw.ImageDraw, box: Box, shade: Shade, values: str, probes: str,
         cause: str | None) -> None:
    if cause is not None:
        gap = CAUSE_RING_GAP + CAUSE_RING_WIDTH
        draw.rectangle([box.left - gap, box.top - gap, box.right + gap, box.bottom + gap],
                       outline=CAUSE_RING, width=CAUSE_RING_WIDTH)
    draw.rectangle([box.left, box.top, box.right, box.bottom], fill=FILL[shade])
    label = LABEL[shade]
    label_width = int(draw.textlength(label, font=_font(18)))
    right = box.right - TEXT_INSET
    draw.text((right - label_width, box.top + 14), label, font=_font(18), fill=ON_FILL)
    text_width = right - label_width - 16 - (box.left + TEXT_INSET)
    x = box.left + TEXT_INSET
    draw.text((x, box.top + 10), _fit(draw, box.title, 22, text_width), font=_font(22), fill=ON_FILL)
    draw.text((x, box.top + 40), _fit(draw, values, 17, right - x), font=_font(17), fill=ON_FILL)
    draw.text((x, box.top + 66), _fit(draw, probes, 15, right - x), font=_font(15), fill=ON_FILL)
    if cause is not None:
        tag = "CAUSE"
        tag_width = int(draw.textlength(tag, font=_font(16)))
        tag_left = right - tag_width - 12
        draw.rectangle([tag_left, box.top + 38, right, box.top + 60], fill=CAUSE_RING)
        draw.text((tag_left + 6, box.top + 40), tag, font=_font(16), fill=ON_FILL)


def headline(report: Report) -> str:
    problems = [f for f in report.findings if f.status.is_problem]
    checked = f"{len(report.findings)} probes in {report.duration_s:.1f} s"
    when = report.started_at.strftime("%Y-%m-%d %H:%M UTC")
    state = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else "all ok"
    return f"{state} · {checked} · {when}"


def render(report: Report, values: NodeValues) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title = f"netcheck · {report.node}: from the pod to the API server, layer by layer"
    draw.text((MARGIN, 22), _fit(draw, title, 32, WIDTH - 2 * MARGIN), font=_font(32), fill=INK)
    draw.text((MARGIN, 66), headline(report), font=_font(18), fill=INK)

    pod_x = BOXES[POD_LEG[0]].center_x
    chain = POD_LEG + SHARED
    for upper, lower in zip(chain, chain[1:], strict=False):
        _arrow(draw, pod_x, BOXES[upper].bottom, BOXES[lower].top)
    host = BOXES[HOST_LEG]
    joins = BOXES[SHARED[0]]
    _arrow(draw, host.center_x, host.bottom, joins.top)
    note_x = host.center_x + 16
    for i, line in enumerate(("the node's own traffic", "skips the pod's layers", "and joins here")):
        draw.text((note_x, host.bottom + 24 + 24 * i), line, font=_font(17), fill=INK)

    shades = box_shades(report)
    found = findings_by_box(report)
    marks = cause_marks(report)
    marked = {m.box: m for m in marks}
    for key, box in BOXES.items():
        probes = _probe_line(found[key]) if key != API_SERVER else API_NOTE
        mark = marked.get(key)
        _box(draw, box, shades[key], box_values(key, values), probes, mark.label if mark else None)

    _footer(draw, marks)
    return image


def _footer(draw: ImageDraw.ImageDraw, marks: list[CauseMark]) -> None:
    y = FOOTER_TOP
    if marks:
        lines: list[str] = []
        for mark in marks:
            lines += _wrap(draw, f"Cause in {BOXES[mark.box].title}: {mark.label}", 18, WIDTH - 2 * MARGIN)
        for line in lines[:FOOTER_CAUSE_LINES]:
            draw.text((MARGIN, y), line, font=_font(18), fill=INK)
            y += 26
    else:
        draw.text((MARGIN, y), "No cause found: every checked layer is ok.", font=_font(18), fill=INK)
    legend_y = FOOTER_TOP + FOOTER_CAUSE_LINES * 26 + 8
    x = MARGIN
    for shade in (Shade.OK, Shade.PROBLEM, Shade.UNCHECKED):
        draw.rectangle([x, legend_y, x + 22, legend_y + 22], fill=FILL[shade])
        draw.text((x + 30, legend_y + 1), shade.value, font=_font(17), fill=INK)
        x += 60 + int(draw.textlength(shade.value, font=_font(17)))
    draw.rectangle([x, legend_y, x + 22, legend_y + 22], outline=CAUSE_RING, width=CAUSE_RING_WIDTH // 2)
    draw.text((x + 30, legend_y + 1), "cause", font=_font(17), fill=INK)


def _wrap(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> list[str]:
    """`text` broken into lines of at most `width` pixels."""
    lines: list[str] = []
    for word in printable(text).split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=_font(size)) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def render_png(report: Report, values: NodeValues) -> bytes:
    """The picture as PNG bytes."""
    buffer = io.BytesIO()
    render(report, values).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


async def render_png_async(report: Report, values: NodeValues) -> bytes:
    """`render_png` in a worker thread: drawing takes a tenth of a second of CPU the loop must not wait on."""
    return await asyncio.to_thread(render_png, report, values)
