"""Correctness of the benchmark's pure helpers (no timings, no lab, no sockets).

Covers: NFQUEUE netlink message layout (bind/config/verdict headers, attribute padding, queue number
in network order), parsing of packet and error messages (including a truncated buffer), the delay
line's FIFO release and wait times, the iptables rule argv (and refusal of an unknown action),
nearest-rank percentiles and summaries, VmRSS parsing, and merging partial results.
"""

from __future__ import annotations

import struct

import pytest

from bench import nfqueue
from bench.latency import DelayLine, rule_argv
from bench.stats import percentile, rss_kib, summary_ms


def test_verdict_message_layout() -> None:
    raw = nfqueue.verdict_message(7, 0x01020304, batch=True)
    length, msg_type, flags, _seq, _pid = nfqueue.NLMSG_HDR.unpack_from(raw)
    assert length == len(raw) == 16 + 4 + 4 + 8
    assert msg_type == (3 << 8) | nfqueue.NFQNL_MSG_VERDICT_BATCH
    assert flags == nfqueue.NLM_F_REQUEST
    assert raw[16:20] == bytes([0, 0, 0, 7])  # AF_UNSPEC, version 0, queue 7 big-endian
    nla_len, nla_type = struct.unpack_from("=HH", raw, 20)
    assert (nla_len, nla_type) == (12, nfqueue.NFQA_VERDICT_HDR)
    assert struct.unpack_from("!II", raw, 24) == (nfqueue.NF_ACCEPT, 0x01020304)


def test_bind_messages_ask_for_acks_and_pad_attributes() -> None:
    bind, params, flags = nfqueue.bind_messages(3, 100)
    for raw in (bind, params, flags):
        assert len(raw) % 4 == 0
        assert nfqueue.NLMSG_HDR.unpack_from(raw)[2] & nfqueue.NLM_F_ACK
    assert struct.unpack_from("!BxH", bind, 24) == (nfqueue.NFQNL_CFG_CMD_BIND, 0)
    # params: copy_range 0, mode META (5 bytes, padded to 8 in a 9-byte attribute)
    assert struct.unpack_from("=H", params, 20)[0] == 9
    assert struct.unpack_from("!IB", params, 24) == (0, nfqueue.NFQNL_COPY_META)
    assert struct.unpack_from("!I", params, 36)[0] == 100  # queue maxlen after the padded params


def _packet(packet_id: int) -> bytes:
    body = struct.pack("!BBH", 2, 0, 7)
    body += nfqueue.attr(nfqueue.NFQA_CFG_PARAMS, b"\x00" * 3)  # another attribute first
    body += nfqueue.attr(nfqueue.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 2))
    return nfqueue.NLMSG_HDR.pack(16 + len(body), (3 << 8) | nfqueue.NFQNL_MSG_PACKET, 0, 0, 0) + body


def test_parse_packets_and_errors() -> None:
    error = nfqueue.NLMSG_HDR.pack(16 + 4, nfqueue.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -1)
    ack = nfqueue.NLMSG_HDR.pack(16 + 4, nfqueue.NLMSG_ERROR, 0, 2, 0) + struct.pack("=i", 0)
    found = list(nfqueue.parse(_packet(41) + error + _packet(42) + ack))
    assert found == [("packet", 41), ("error", 1), ("packet", 42), ("error", 0)]
    assert list(nfqueue.parse(_packet(5)[:10])) == []  # shorter than a header: nothing


def test_delay_line_releases_in_order_when_due() -> None:
    line = DelayLine(0.02)
    assert line.wait_s(0.0) is None and line.due(1.0) is None
    line.hold(1, now=10.0)
    line.hold(2, now=10.005)
    line.hold(3, now=10.03)
    assert line.wait_s(10.01) == pytest.approx(0.01)
    assert line.due(10.019) is None
    assert line.due(10.026) == 2  # 1 and 2 are due: the batch verdict covers both
    assert len(line) == 1
    assert line.due(10.05) == 3 and len(line) == 0


def test_rule_argv() -> None:
    argv = rule_argv("-I", 9)
    assert argv[:5] == ["iptables-nft", "-t", "mangle", "-I", "FORWARD"]
    assert argv[-3:] == ["--queue-num", "9", "--queue-bypass"]
    with pytest.raises(ValueError):
        rule_argv("-F")


def test_percentiles_and_summary() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    assert summary_ms([0.001, 0.002, 0.010]) == {"count": 3, "p50_ms": 2.0, "p99_ms": 10.0, "max_ms": 10.0}


def test_rss_kib() -> None:
    assert rss_kib("Name:\tpython\nVmRSS:\t  112204 kB\nThreads: 3\n") == 112204
    with pytest.raises(ValueError):
        rss_kib("Name: x\n")


def test_merge_keeps_later_rows_and_refuses_other_machines() -> None:
    from bench.merge import merge

    base = {"started_at": "t0", "machine": {"nproc": 2}, "delay_ms": 20.0}
    a = {**base, "one_node": {"check_s": 1.0}, "fleet": [{"nodes": 3, "check_all_s": 5.0},
                                                         {"nodes": 30, "check_all_s": 90.0}]}
    b = {**base, "fleet": [{"nodes": 30, "max_nodes_in_parallel": 4, "check_all_s": 99.0},
                           {"nodes": 30, "max_nodes_in_parallel": 30, "check_all_s": 60.0}],
         "slack": {"ack": {}}}
    out = merge([a, b], ["a.json", "b.json"])
    assert out["one_node"] == {"check_s": 1.0} and out["slack"] == {"ack": {}}
    assert [(r["nodes"], r["check_all_s"]) for r in out["fleet"]] == [(3, 5.0), (30, 99.0), (30, 60.0)]
    assert out["sources"] == ["a.json", "b.json"]
    with pytest.raises(ValueError):
        merge([a, {**b, "machine": {"nproc": 8}}], ["a", "b"])
