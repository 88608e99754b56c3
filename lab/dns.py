"""A tiny authoritative DNS responder for the lab (UDP and TCP), started by lab.nodes.

On master it serves the cluster DNS service (reached through kube-proxy DNAT of 10.96.0.10):
`kubernetes.default.svc.cluster.local` -> A 10.96.0.1, NXDOMAIN for anything else. The
resolved-stub fault runs it on 127.0.0.53 as a stand-in for systemd-resolved's stub listener.
It never recurses and never forwards anywhere, so no lab query can leave the lab.

    python -m lab.dns --listen 192.168.1.10 --port 53
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import struct
import threading

from lab import spec

RCODE_NXDOMAIN = 3
RCODE_FORMERR = 1
TYPE_A = 1
CLASS_IN = 1
ANSWER_TTL_S = 30


def records() -> dict[str, str]:
    return {f"kubernetes.default.svc.{spec.CLUSTER_DOMAIN}": spec.API_SERVICE_IP}


def _parse_question(msg: bytes) -> tuple[str, int, int, int] | None:
    """(name, qtype, qclass, end offset) of the first question, or None if malformed."""
    pos, labels = 12, []
    while pos < len(msg):
        length = msg[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(msg):
            return None
        labels.append(msg[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(msg):
        return None
    qtype, qclass = struct.unpack("!HH", msg[pos:pos + 4])
    return ".".join(labels).lower(), qtype, qclass, pos + 4


def answer(query: bytes) -> bytes | None:
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    parsed = _parse_question(query) if qdcount == 1 else None
    rd = flags & 0x0100
    if parsed is None:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | RCODE_FORMERR, 0, 0, 0, 0)
    name, qtype, qclass, end = parsed
    question = query[12:end]
    address = records().get(name.rstrip("."))
    if address is None:
        return struct.pack("!HHHHHH", qid, 0x8400 | rd | RCODE_NXDOMAIN, 1, 0, 0, 0) + question
    if qtype != TYPE_A or qclass != CLASS_IN:  # the name exists, no data of that type
        return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 0, 0, 0) + question
    rr = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ANSWER_TTL_S, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + question + rr


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = answer(data)
        if reply:
            sock.sendto(reply, self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return
        reply = answer(self.rfile.read(struct.unpack("!H", head)[0]))
        if reply:
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


class _ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(host: str, port: int) -> None:
    udp = _ThreadingUdp((host, port), _Udp)
    tcp = _ThreadingTcp((host, port), _Tcp)
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    tcp.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args()
    serve(args.listen, args.port)


if __name__ == "__main__":
    main()
