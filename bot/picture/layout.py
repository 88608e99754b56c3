"""Where every box of the layer picture sits: the geometry the renderer draws and tests read back.

The diagram is docs/troubleshooting.md#layers drawn for one node: the pod's leg (pod app, pod
network, host veth, iptables) on the left, the node's own leg (a process on the host) beside it on
the right, both joining at host routing and going on through the physical interface and the router
to the API server. Each box is one key of `BOXES`; `Box.sample` is a point inside the box where
only its fill is drawn (no text, no outline), so a test can read the colour of a layer there.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.model import Layer

WIDTH = 1200
HEIGHT = 1220
MARGIN = 40
HEADER_BOTTOM = 104
BOX_HEIGHT = 92
ROW_PITCH = 116
FIRST_ROW_TOP = 120
POD_LEG_RIGHT = 700
HOST_LEG_LEFT = 760
TEXT_INSET = 24
"""Text starts this far inside a box; the strip left of it holds only the fill (see `Box.sample`)."""
FOOTER_TOP = FIRST_ROW_TOP + 8 * ROW_PITCH

HOST_LEG = "host-leg"
API_SERVER = "api-server"
"""Box keys that are not a `Layer`: the node's own traffic, and the destination."""


@dataclass(frozen=True)
class Box:
    key: str
    title: str
    left: int
    top: int
    right: int
    bottom: int

    @property
    def sample(self) -> tuple[int, int]:
        """A pixel inside the box that only the box's fill covers."""
        return self.left + TEXT_INSET // 3, (self.top + self.bottom) // 2

    @property
    def center_x(self) -> int:
        return (self.left + self.right) // 2


def _row_top(row: int) -> int:
    return FIRST_ROW_TOP + row * ROW_PITCH


def _pod_leg(key: str, title: str, row: int) -> Box:
    return Box(key, title, MARGIN, _row_top(row), POD_LEG_RIGHT, _row_top(row) + BOX_HEIGHT)


def _shared(key: str, title: str, row: int) -> Box:
    return Box(key, title, MARGIN, _row_top(row), WIDTH - MARGIN, _row_top(row) + BOX_HEIGHT)


BOXES: dict[str, Box] = {
    box.key: box
    for box in (
        _pod_leg(Layer.POD_APP.value, "Pod application", 0),
        _pod_leg(Layer.POD_NETWORK.value, "Pod network (eth0)", 1),
        _pod_leg(Layer.HOST_VETH.value, "Host veth (cali*)", 2),
        _pod_leg(Layer.IPTABLES.value, "iptables (NAT, filter)", 3),
        Box(HOST_LEG, "The node's own traffic", HOST_LEG_LEFT, _row_top(0), WIDTH - MARGIN,
            _row_top(0) + BOX_HEIGHT),
        _shared(Layer.HOST_ROUTE.value, "Host routing", 4),
        _shared(Layer.PHYSICAL.value, "Physical interface", 5),
        _shared(Layer.ROUTER.value, "Router / the network beyond", 6),
        _shared(API_SERVER, "API server", 7),
    )
}
"""Every box, keyed by `Layer` value (plus HOST_LEG and API_SERVER), in drawing order."""

POD_LEG = [Layer.POD_APP.value, Layer.POD_NETWORK.value, Layer.HOST_VETH.value, Layer.IPTABLES.value]
SHARED = [Layer.HOST_ROUTE.value, Layer.PHYSICAL.value, Layer.ROUTER.value, API_SERVER]
