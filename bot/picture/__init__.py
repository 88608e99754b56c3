"""The picture of a check: the troubleshooting guide's layer diagram for one node, each layer coloured
by what the probes found there, the cause marked and named, the node's real values on the layers.

`render_png(report, values)` / `render_png_async` (draw.py) make the PNG; `node_values` (values.py)
collects the values; `BOXES` (layout.py) is where every layer's box sits, shipped so tests can read
pixels at known places. Used by `netcheck check --png`, the Slack thread upload and the demo.
"""

from bot.picture.draw import FILL, render_png, render_png_async
from bot.picture.layout import BOXES, Box
from bot.picture.states import Shade, box_shades, cause_marks
from bot.picture.values import NodeValues, node_values

__all__ = ["BOXES", "FILL", "Box", "NodeValues", "Shade", "box_shades", "cause_marks", "node_values",
           "render_png", "render_png_async"]
