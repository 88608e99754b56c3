"""A tiny authoritative DNS responder for the lab (UDP and TCP), started by lab.nodes.

On the control plane it serves the cluster DNS service (reached through kube-proxy DNAT of the
layout's DNS service IP): `kubernetes.default.svc.<domain>` -> A <API service IP>, NXDOMAIN for
anything else. The resolved-stub fault runs it on 127.0.0.53 as a stand-in for systemd-resolved's
stub listener. It never recurses and never forwards anywhere, so no lab query can leave the lab.

    python -m lab.dns --listen CONTROL_PLANE_IP --port 53 --domain cluster.local --api-service-ip IP
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import struct
import threading

RCODE_NXDOMAIN = 3
RCODE_FORMERR = 1
TYPE_A = 1
CLASS_IN = 1
ANSWER_TTL_S = 30


def records(domain: str, api_service_ip: str) -> dict[str, str]:
    return {f"kubernetes.default.svc.{domain}": api_service_ip}


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


def answer(query: bytes, known: dict[str, str]) -> bytes | None:
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    parsed = _parse_question(query) if qdcount == 1 else None
    rd = flags & 0x0100
    if parsed is None:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | RCODE_FORMERR, 0, 0, 0, 0)
    name, qtype, qclass, end = parsed
    question = query[12:end]
    address = known.get(name.rstrip("."))
    if address is None:
        return struct.pack("!HHHHHH", qid, 0x8400 | rd | RCODE_NXDOMAIN, 1, 0, 0, 0) + question
    if qtype != TYPE_A or qclass != CLASS_IN:  # the name exists, no data of that type
        return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 0, 0, 0) + question
    rr = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ANSWER_TTL_S, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + question + rr


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = answer(data, self.server.known)  # type: ignore[attr-defined]
        if reply:
            sock.sendto(reply, self.client_address)


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return
        query = self.rfile.read(struct.unpack("!H", head)[0])
        reply = answer(query, self.server.known)  # type: ignore[attr-defined]
        if reply:
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


class _ThreadingUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(host: str, port: int, known: dict[str, str]) -> None:
    udp = _ThreadingUdp((host, port), _Udp)
    tcp = _ThreadingTcp((host, port), _Tcp)
    udp.known = tcp.known = known  # type: ignore[attr-defined]
    threading.Thread(target=udp.serve_forever, daemon=True).start()
    tcp.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--domain", required=True, help="the cluster domain, e.g. cluster.local")
    parser.add_argument("--api-service-ip", required=True, help="the API service's ClusterIP")
    args = parser.parse_args()
    serve(args.listen, args.port, records(args.domain, args.api_service_ip))


if __name__ == "__main__":
    main()
