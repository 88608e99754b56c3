"""A minimal NFQUEUE client over raw netlink (no C library): bind a queue, read packet ids, send verdicts.

Used by bench/latency.py (the benchmark's userspace delayer, since this kernel has no netem).
NetfilterQueue on PyPI would need libnetfilter-queue-dev and a C build on every machine; the protocol
subset needed here (bind, copy-meta, verdict) is small enough to speak directly: see
include/uapi/linux/netfilter/nfnetlink_queue.h. Message building/parsing is pure and unit-tested;
only `NfQueue` touches a socket.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 0x1
NF_ACCEPT = 1
NLMSG_HDR = struct.Struct("=IHHII")
NFGEN_HDR = struct.Struct("!BBH")  # family, version, res_id (big-endian queue number)
NLA_HDR = struct.Struct("=HH")
RECV_BUFFER_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_BYTES = 65536


class NetlinkError(OSError):
    """The kernel answered a netfilter request with an error."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = NLA_HDR.pack(NLA_HDR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def message(msg_type: int, queue: int, attrs: bytes, *, seq: int = 0, flags: int = NLM_F_REQUEST) -> bytes:
    """An nfnetlink message of the queue subsystem for `queue`."""
    body = NFGEN_HDR.pack(socket.AF_UNSPEC, 0, queue) + attrs
    return (
        NLMSG_HDR.pack(NLMSG_HDR.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0) + body
    )


def bind_messages(queue: int, maxlen: int) -> list[bytes]:
    """Bind `queue`, copy metadata only (ids, no payload), queue length, fail open when full."""
    flags = NLM_F_REQUEST | NLM_F_ACK
    return [
        message(
            NFQNL_MSG_CONFIG,
            queue,
            attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
            seq=1,
            flags=flags,
        ),
        message(
            NFQNL_MSG_CONFIG,
            queue,
            attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
            + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)),
            seq=2,
            flags=flags,
        ),
        message(
            NFQNL_MSG_CONFIG,
            queue,
            attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
            + attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
            seq=3,
            flags=flags,
        ),
    ]


def verdict_message(queue: int, packet_id: int, *, batch: bool = False) -> bytes:
    """ACCEPT for `packet_id` (with batch=True: for every queued id up to and including it)."""
    kind = NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT
    return message(kind, queue, attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def parse(buffer: bytes) -> Iterator[tuple[str, int]]:
    """Yield ("packet", id) for queued packets and ("error", errno) for netlink errors/acks (errno 0)."""
    offset = 0
    while offset + NLMSG_HDR.size <= len(buffer):
        length, msg_type, _flags, _seq, _pid = NLMSG_HDR.unpack_from(buffer, offset)
        if length < NLMSG_HDR.size:
            return
        body = buffer[offset + NLMSG_HDR.size : offset + length]
        if msg_type == NLMSG_ERROR:
            yield "error", -struct.unpack_from("=i", body)[0]
        elif msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos = NFGEN_HDR.size
            while pos + NLA_HDR.size <= len(body):
                nla_len, nla_type = NLA_HDR.unpack_from(body, pos)
                if nla_len < NLA_HDR.size:
                    break
                if (nla_type & 0x3FFF) == NFQA_PACKET_HDR:
                    yield "packet", struct.unpack_from("!I", body, pos + NLA_HDR.size)[0]
                    break
                pos += _align(nla_len)
        offset += _align(length)


class NfQueue:
    """A bound NFQUEUE socket (needs CAP_NET_ADMIN in the namespace it is created in)."""

    def __init__(self, queue: int, maxlen: int = 4096) -> None:
        self.queue = queue
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_BYTES)
        self.sock.bind((0, 0))
        for request in bind_messages(queue, maxlen):
            self.sock.send(request)
            for kind, value in parse(self.sock.recv(MAX_MESSAGE_BYTES)):
                if kind == "error" and value != 0:
                    self.sock.close()
                    reason = errno.errorcode.get(value, str(value))
                    raise NetlinkError(value, f"binding NFQUEUE {queue} failed: {reason}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_ids(self) -> list[int]:
        """Packet ids from one receive (call when the socket is readable)."""
        return [value for kind, value in parse(self.sock.recv(MAX_MESSAGE_BYTES)) if kind == "packet"]

    def accept(self, packet_id: int, *, batch: bool = False) -> None:
        self.sock.send(verdict_message(self.queue, packet_id, batch=batch))

    def close(self) -> None:
        self.sock.close()
