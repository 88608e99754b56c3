"""Kubelet stand-in: TLS on :10250 serving /healthz and /containerLogs/{ns}/{pod}/{container}.

Started on every node by lab.nodes; the API stand-in dials it for `kubectl logs`, so a blocked
port (kubelet-blocked fault) fails exactly like a real API server's log fetch. Its `--config`
file is a KubeletConfiguration whose `resolvConf` the DNS probes read over SSH.

    python -m lab.kubelet --node NODE --config PATH --cert PATH --key PATH

(lab.nodes starts it as `lab/bin/kubelet`, the name a node's kubelet runs under.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import re
import ssl

LOG_PATH = re.compile(r"^/containerLogs/([a-z0-9.-]+)/([a-z0-9.-]+)/([a-z0-9.-]+)$")


def make_handler(node: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            return

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._reply(200, "ok")
                return
            match = LOG_PATH.match(path)
            if not match:
                self._reply(404, "404 page not found\n")
                return
            namespace, pod, container = match.groups()
            now = dt.datetime.now(dt.UTC).isoformat()
            self._reply(200, f"{now} {node} kubelet: container {container} of pod {namespace}/{pod} "
                             "started\n"
                             f"{now} {node} kubelet: sleeping\n")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--config", required=True, help="KubeletConfiguration file (read by probes)")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=10250)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = http.server.ThreadingHTTPServer((args.listen, args.port), make_handler(args.node))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
