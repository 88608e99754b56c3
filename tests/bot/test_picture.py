"""The layer picture (bot/picture) and `netcheck check NODE --png FILE`.

Covers: each box's shade from the findings of its layer (problem beats ok beats not checked; the
node's own leg from host-api; the API server reached when any API probe got an answer); the PNG is a
valid PNG of the declared size whose pixel at every box's `sample` point has that box's colour; the
cause's box (and only it) is ringed, and the cause is named, also when it is another node's finding
(ringed where it shows here, naming that node); the node's values come from the cluster
facts (and from observations, when a report carries them) and are written on the layers; glyphs the
bundled font lacks are replaced; `--png` writes the picture through the real CLI and engine (over fake
transports), refuses --all and an unwritable path with exit 2.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image

from bot.cli import main
from bot.picture import BOXES, FILL, Shade, box_shades, cause_marks, node_values, render_png
from bot.picture.draw import BACKGROUND, CAUSE_RING, CAUSE_RING_GAP, CAUSE_RING_WIDTH, box_values, printable
from bot.picture.layout import API_SERVER, HEIGHT, HOST_LEG, WIDTH
from bot.wiring import build_engine
from probes.engine import Transports
from probes.facts import ClusterFacts, Endpoint, InstallationFacts, NodeFacts
from probes.model import CauseRef, Finding, Layer, Report, Status, fail, ok
from probes.registry import Registry, probe
from tests.fakes import FakeCluster

NODE = "edge-7"
FACTS = ClusterFacts(
    api_service_ip="172.30.0.1", api_service_port=8443,
    api_endpoints=[Endpoint(ip="10.44.0.5", port=16443)],
    nodes=[NodeFacts(name=NODE, internal_ip="10.44.0.27", pod_cidr="10.250.3.0/24"),
           NodeFacts(name="edge-8", internal_ip="10.44.0.28", pod_cidr="10.250.4.0/24")],
    installation=InstallationFacts(mtu=1380),
)


def finding(probe_id: str, layer: Layer, status: Status, **extra: object) -> Finding:
    return Finding(probe=probe_id, layer=layer, status=status, summary=f"{probe_id} says {status.value}",
                   **extra)


def report(findings: list[Finding]) -> Report:
    return Report(node=NODE, started_at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC), duration_s=2.5,
                  findings=findings)


CASE_STUDY = report([
    finding("host-api", Layer.HOST_ROUTE, Status.OK),
    finding("pod-api", Layer.POD_APP, Status.FAIL, caused_by="masquerade"),
    finding("pod-routes", Layer.POD_NETWORK, Status.OK),
    finding("masquerade", Layer.IPTABLES, Status.FAIL),
    finding("iptables-mode", Layer.IPTABLES, Status.OK),
    finding("ip-forward", Layer.HOST_ROUTE, Status.OK),
    finding("mtu", Layer.PHYSICAL, Status.SKIP),
    finding("return-path", Layer.ROUTER, Status.WARN, caused_by="masquerade"),
])


def pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def test_shades_follow_the_findings_of_each_layer() -> None:
    shades = box_shades(CASE_STUDY)
    assert shades[Layer.POD_APP] is Shade.PROBLEM
    assert shades[Layer.POD_NETWORK] is Shade.OK
    assert shades[Layer.HOST_VETH] is Shade.UNCHECKED  # no probe of that layer ran
    assert shades[Layer.IPTABLES] is Shade.PROBLEM  # one fail beats one ok
    assert shades[Layer.HOST_ROUTE] is Shade.OK  # ip-forward; host-api belongs to the node's own leg
    assert shades[HOST_LEG] is Shade.OK
    assert shades[Layer.PHYSICAL] is Shade.UNCHECKED  # skipped is not checked
    assert shades[Layer.ROUTER] is Shade.PROBLEM  # warn is a problem
    assert shades[API_SERVER] is Shade.OK  # the host got an answer


def test_api_server_box_is_a_problem_only_when_nothing_reached_it() -> None:
    nothing = report([finding("host-api", Layer.HOST_ROUTE, Status.FAIL),
                      finding("pod-api", Layer.POD_APP, Status.ERROR)])
    assert box_shades(nothing)[API_SERVER] is Shade.PROBLEM
    assert box_shades(nothing)[HOST_LEG] is Shade.PROBLEM
    unchecked = report([finding("pod-api", Layer.POD_APP, Status.SKIP)])
    assert box_shades(unchecked)[API_SERVER] is Shade.UNCHECKED


def test_png_colours_match_the_findings_at_every_box() -> None:
    png = render_png(CASE_STUDY, node_values(CASE_STUDY, FACTS))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    Image.open(io.BytesIO(png)).verify()  # a well-formed PNG, CRCs and all
    image = pixels(png)
    assert image.size == (WIDTH, HEIGHT)
    shades = box_shades(CASE_STUDY)
    for key, box in BOXES.items():
        assert image.getpixel(box.sample) == FILL[shades[key]], key


def test_every_shade_has_its_own_colour_and_a_healthy_node_is_green() -> None:
    assert len(set(FILL.values())) == 3 and BACKGROUND not in FILL.values()
    healthy = report([finding(p, layer, Status.OK) for p, layer in (
        ("host-api", Layer.HOST_ROUTE), ("pod-api", Layer.POD_APP), ("pod-routes", Layer.POD_NETWORK),
        ("veth", Layer.HOST_VETH), ("masquerade", Layer.IPTABLES), ("ip-forward", Layer.HOST_ROUTE),
        ("mtu", Layer.PHYSICAL), ("return-path", Layer.ROUTER))])
    image = pixels(render_png(healthy, node_values(healthy, FACTS)))
    assert {image.getpixel(box.sample) for box in BOXES.values()} == {FILL[Shade.OK]}
    assert cause_marks(healthy) == []


def test_the_cause_is_ringed_and_named() -> None:
    marks = cause_marks(CASE_STUDY)
    assert [(m.box, m.probe) for m in marks] == [(Layer.IPTABLES.value, "masquerade")]
    assert "masquerade says fail" in marks[0].label
    image = pixels(render_png(CASE_STUDY, node_values(CASE_STUDY, FACTS)))
    ring_offset = CAUSE_RING_GAP + CAUSE_RING_WIDTH // 2
    for key, box in BOXES.items():
        ring = image.getpixel((box.left - ring_offset, box.sample[1]))
        assert ring == (CAUSE_RING if key == Layer.IPTABLES else BACKGROUND), key


def test_a_cause_on_another_node_is_marked_where_it_shows_here() -> None:
    remote = CauseRef(node="edge-8", probe="return-path")
    seen = report([finding("host-api", Layer.HOST_ROUTE, Status.OK),
                   finding("encapsulation", Layer.ROUTER, Status.FAIL, caused_by_node=remote)])
    (mark,) = cause_marks(seen)
    assert (mark.box, mark.probe) == (Layer.ROUTER.value, "return-path") and "on edge-8" in mark.label
    image = pixels(render_png(seen, node_values(seen, FACTS)))
    router = BOXES[Layer.ROUTER]
    ring = (router.left - CAUSE_RING_GAP - CAUSE_RING_WIDTH // 2, router.sample[1])
    assert image.getpixel(ring) == CAUSE_RING


def test_values_come_from_the_cluster_facts_and_land_on_the_layers() -> None:
    values = node_values(CASE_STUDY, FACTS)
    node = FACTS.node(NODE)
    endpoint = FACTS.api_endpoints[0]
    assert values.node_ip == node.internal_ip and values.pod_cidr == node.pod_cidr
    assert values.api_service == f"{FACTS.api_service_ip}:{FACTS.api_service_port}"
    assert values.api_endpoint == f"{endpoint.ip}:{endpoint.port}"
    assert values.pod_mtu == FACTS.installation.mtu
    assert values.uplink is None and values.pod_ip is None  # not observed: left out, never guessed
    assert values.api_endpoint in box_values(API_SERVER, values)
    assert node.internal_ip in box_values(Layer.PHYSICAL.value, values)
    assert node.pod_cidr in box_values(Layer.POD_APP.value, values)
    assert "pod MTU 1380" in box_values(Layer.POD_NETWORK.value, values)
    bare = node_values(CASE_STUDY, None)
    assert bare.node == NODE and bare.node_ip is None and box_values(API_SERVER, bare) == ""


def test_glyphs_the_font_lacks_are_replaced() -> None:
    assert printable("pod→API — down") == "pod->API - down"


# ---- netcheck check --png, through the CLI and a real Engine over fake transports -----------------

REG = Registry()


@probe(id="host-api", layer=Layer.HOST_ROUTE, registry=REG)
async def host_api(ctx):
    """The node reaches the API."""
    return ok("answered")


@probe(id="masquerade", layer=Layer.IPTABLES, registry=REG)
async def masquerade(ctx):
    """Pod egress is NATed."""
    return fail("no NAT for pods")


def factory(config):
    async def discover() -> ClusterFacts:
        return FACTS

    return build_engine(config, transports=Transports(cluster=FakeCluster(), discover=discover), registry=REG)


def test_check_png_writes_the_picture(tmp_path, capsys) -> None:
    target = tmp_path / "node.png"
    assert main(["check", NODE, "--png", str(target)], engine_factory=factory) == 1
    image = pixels(target.read_bytes())
    assert image.getpixel(BOXES[Layer.IPTABLES].sample) == FILL[Shade.PROBLEM]
    assert image.getpixel(BOXES[HOST_LEG].sample) == FILL[Shade.OK]
    assert image.getpixel(BOXES[Layer.POD_APP].sample) == FILL[Shade.UNCHECKED]
    assert f"written to {target}" in capsys.readouterr().err


def test_check_png_refuses_all_and_unwritable_paths(tmp_path, capsys) -> None:
    assert main(["check", "--all", "--png", str(tmp_path / "x.png")], engine_factory=factory) == 2
    assert "--png draws one node's picture" in capsys.readouterr().err
    missing_dir = tmp_path / "no-such-dir" / "x.png"
    assert main(["check", NODE, "--png", str(missing_dir)], engine_factory=factory) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write the picture" in err[0], err
    assert not missing_dir.exists()
