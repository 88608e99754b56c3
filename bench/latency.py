"""The benchmark's added latency: hold every packet crossing the lab router's LAN bridge for N ms.

This kernel has no netem (docs/lab.md#what-the-kernel-cannot-do), so
`python -m bench.latency --delay-ms 20` runs inside the router namespace
and accepts each queued packet `delay` later (bench/nfqueue.py). The LAN is a
bridge (node<->node and ops<->node traffic is bridged, not routed). This kernel's nft has no
`queue` expression (neither bridge nor ip family: "No such file or directory"), but the xtables
NFQUEUE target works, so the rule is `iptables-nft -t mangle -I FORWARD -j NFQUEUE`, which sees
bridged IPv4 through br_netfilter (net.bridge.bridge-nf-call-iptables=1 in the router namespace).
Each direction crosses the bridge once: 20 ms each way. The rule uses `bypass`, so packets pass
undelayed (never dropped) if the delayer is not running.
Started and stopped by bench/lab.py (`Delayer`), killed by PID; `rules()` is pure for tests.
"""

from __future__ import annotations

import argparse
import collections
import select
import signal
import sys
import time

from bench.nfqueue import NfQueue

QUEUE_NUMBER = 7
IPTABLES = "iptables-nft"


def rule_argv(action: str, queue: int = QUEUE_NUMBER) -> list[str]:
    """iptables argv (action "-I" add, "-D" remove) queueing forwarded/bridged IPv4 to `queue`."""
    if action not in ("-I", "-D", "-C"):
        raise ValueError(f"action must be -I, -D or -C, not {action!r}")
    return [IPTABLES, "-t", "mangle", action, "FORWARD", "-j", "NFQUEUE", "--queue-num", str(queue),
            "--queue-bypass"]


class DelayLine:
    """Packet ids in arrival order with their due time; constant delay keeps it FIFO."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self._held: collections.deque[tuple[float, int]] = collections.deque()

    def hold(self, packet_id: int, now: float) -> None:
        self._held.append((now + self.delay_s, packet_id))

    def due(self, now: float) -> int | None:
        """The highest id whose time has come (every earlier id is due too), or None."""
        last = None
        while self._held and self._held[0][0] <= now:
            last = self._held.popleft()[1]
        return last

    def wait_s(self, now: float) -> float | None:
        """Seconds until the next release, None when nothing is held."""
        return max(0.0, self._held[0][0] - now) if self._held else None

    def __len__(self) -> int:
        return len(self._held)


def serve(queue: NfQueue, line: DelayLine) -> None:
    """Read ids and release them when due, until SIGTERM/SIGINT."""
    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    released = 0
    while not stopping:
        wait = line.wait_s(time.monotonic())
        try:
            readable, _, _ = select.select([queue], [], [], wait if wait is not None else 0.5)
        except InterruptedError:
            continue
        now = time.monotonic()
        if readable:
            for packet_id in queue.read_ids():
                line.hold(packet_id, now)
        last = line.due(time.monotonic())
        if last is not None:
            queue.accept(last, batch=True)  # accepts every held id <= last: all of them are due
            released += 1
    last = line.due(float("inf"))  # let everything still held go before exiting
    if last is not None:
        queue.accept(last, batch=True)
    print(f"delayer: stopped after {released} release batches", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--delay-ms", type=float, required=True, help="hold time per bridge crossing")
    parser.add_argument("--queue", type=int, default=QUEUE_NUMBER)
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 10_000:
        parser.error("--delay-ms must be from 0 to 10000")
    queue = NfQueue(args.queue)
    print(f"delayer: queue {args.queue}, {args.delay_ms:g} ms per crossing", file=sys.stderr, flush=True)
    try:
        serve(queue, DelayLine(args.delay_ms / 1000.0))
    finally:
        queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
