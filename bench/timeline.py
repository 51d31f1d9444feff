"""Where one request's latency goes, read off the wire: before the upstream call, the call, after it.

    apt-get install -y tcpdump                     # once; needs root (or CAP_NET_RAW) on lo
    .venv/bin/python bench/timeline.py --targets direct,frameworks,gateway,mesh-cli --shape A

Same set-up as bench/run.py's sequential requests (stand-in on core 1, the target on core 0,
one keep-alive connection, one request at a time). While the requests run, ``tcpdump`` records
the loopback packets of the target's port and the stand-in's (headers only). Packet timestamps
are taken by the kernel as each packet is sent, so the instrument adds nothing to the processes
it measures (py-spy pauses them; an in-process clock is itself work). For each request:

* ``before``: the request's last packet in -> the upstream request's first packet out (the
  target's work before it calls the billing API);
* ``upstream``: the upstream request's last packet out -> the upstream answer's last packet in
  (the stand-in's work, the loopback, and how the target's client sends and reads);
* ``after``: the upstream answer's last packet in -> the target's answer's last packet out;
* ``in target``: the request's last packet in -> the answer's last packet out;
* ``client``: the answer's last packet out -> the next request's last packet in (the client's
  own turn, the same for every target).

For ``direct`` (the stand-in called by the client) ``in target`` is the stand-in's own time,
which is what ``upstream`` of the others should be close to. Medians over ``--count`` requests
after 50 unmeasured ones. Nothing here is timed by a test; the numbers go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import run as bench

PHASES = ("before", "upstream", "after", "in target", "client", "seen by client")


@dataclass(frozen=True)
class Packet:
    t: float  # seconds
    src: int  # port
    dst: int
    payload: int  # bytes of TCP payload


def read_pcap(path: Path) -> list[Packet]:
    """The TCP packets of a classic pcap file (Ethernet or Linux loopback framing, IPv4)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    else:
        endian = ">"
        magic = struct.unpack_from(">I", data, 0)[0]
    fraction = 1e-9 if magic == 0xA1B23C4D else 1e-6
    link = struct.unpack_from(endian + "I", data, 20)[0]
    link_bytes = {1: 14, 113: 16, 0: 4}.get(link)
    if link_bytes is None:
        raise bench.BenchError(f"unexpected pcap link type {link}")
    packets: list[Packet] = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, frac, captured, _length = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        frame = data[offset : offset + captured]
        offset += captured
        ip = frame[link_bytes:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:  # IPv4, TCP
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        src, dst = struct.unpack_from("!HH", tcp, 0)
        payload = total - ihl - (tcp[12] >> 4) * 4
        packets.append(Packet(seconds + frac * fraction, src, dst, payload))
    return packets


def phases(packets: list[Packet], port: int, upstream_port: int) -> dict[str, list[float]]:
    """Per request, the phases (µs) of the module docstring, from the payload packets."""
    out: dict[str, list[float]] = {name: [] for name in PHASES}
    requests: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    for packet in packets:
        if packet.payload <= 0:
            continue
        if packet.dst == port:  # the client's request
            if current is None or "answer" in current:
                current = {}
                requests.append(current)
            current["request"] = packet.t
        elif current is None:
            continue
        elif packet.src == port:
            current["answer"] = packet.t
        elif packet.dst == upstream_port:
            current.setdefault("call", packet.t)
            current["call_end"] = packet.t
        elif packet.src == upstream_port:
            current["reply"] = packet.t
    for index, r in enumerate(requests):
        if "answer" not in r:
            continue
        out["in target"].append(1e6 * (r["answer"] - r["request"]))
        if "call" in r and "reply" in r:
            out["before"].append(1e6 * (r["call"] - r["request"]))
            out["upstream"].append(1e6 * (r["reply"] - r["call_end"]))
            out["after"].append(1e6 * (r["answer"] - r["reply"]))
        if index + 1 < len(requests):
            out["client"].append(1e6 * (requests[index + 1]["request"] - r["answer"]))
    return out


def capture(
    target: bench.Target,
    shape: bench.Shape,
    layout: bench.Layout,
    upstream_port: int,
    count: int,
    work: Path,
) -> dict[str, list[float]]:
    port = int(target.url.split(":")[2].split("/")[0])
    pcap = work / f"{target.name}-{shape.name}.pcap"
    body = target.bodies[shape.name]
    with httpx.Client(timeout=30.0, headers=layout.headers()) as client:
        for _ in range(50):  # warm, and the connection open before the capture starts
            client.post(target.url, content=body).raise_for_status()
        dump = subprocess.Popen(  # noqa: S603 - our own command line
            [
                *["tcpdump", "-i", "lo", "-s", "128", "-w", str(pcap), "-U"],
                *["--time-stamp-precision=nano", "-B", "16384"],
                f"tcp and (port {port} or port {upstream_port})",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # tcpdump is listening
        seen: list[float] = []
        try:
            for _ in range(count):
                began = time.perf_counter()
                client.post(target.url, content=body).raise_for_status()
                seen.append(1e6 * (time.perf_counter() - began))
        finally:
            time.sleep(0.5)
            dump.send_signal(signal.SIGINT)
            _, errors = dump.communicate(timeout=10)
    if not pcap.exists():
        raise bench.BenchError(f"tcpdump wrote nothing: {errors.decode(errors='replace')[-300:]}")
    measured = phases(read_pcap(pcap), port, upstream_port)
    measured["seen by client"] = seen
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/timeline.py", description=__doc__)
    parser.add_argument("--targets", default="direct,frameworks,gateway,mesh-cli")
    parser.add_argument("--shape", default="A", choices=sorted(bench.SHAPES))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--gateway-cmd", help="as in bench/run.py")
    parser.add_argument("--frameworks-args", default="", help="as in bench/run.py")
    parser.add_argument(
        "--client-cpu",
        type=int,
        default=None,
        help="pin the client to this core (default: not pinned, as bench/run.py's sequential run)",
    )
    args = parser.parse_args(argv)
    if shutil.which("tcpdump") is None:
        print("timeline: tcpdump is not installed (apt-get install -y tcpdump)", file=sys.stderr)
        return 1
    shape = bench.SHAPES[args.shape]
    args.shapes = [shape.name]
    rows: list[tuple[str, dict[str, list[float]]]] = []
    everywhere = os.sched_getaffinity(0)
    try:
        with contextlib.ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-timeline-")))
            upstream, layout, direct = bench.standin_and_direct(stack, work, shape, connections=1)
            upstream_port = int(upstream.rsplit(":", 1)[1])
            for name in args.targets.split(","):
                print(f"{name}:", flush=True)
                with contextlib.ExitStack() as peer:
                    target = bench.start_target(name, peer, args, upstream, direct, layout, work)
                    bench.check_answer(target, shape, layout, None)
                    if args.client_cpu is not None:
                        os.sched_setaffinity(0, {args.client_cpu})
                    try:
                        measured = capture(target, shape, layout, upstream_port, args.count, work)
                    finally:
                        os.sched_setaffinity(0, everywhere)
                    rows.append((name, measured))
    except bench.BenchError as error:
        print(f"timeline: FAILED: {error}", file=sys.stderr)
        return 1
    print(
        f"\nShape {shape.name}, {args.count} sequential requests, median µs per phase (10th-90th percentile):\n"
    )
    print("| target | " + " | ".join(PHASES) + " |")
    print("|---|" + "--:|" * len(PHASES))
    for name, measured in rows:
        cells = [
            f"{statistics.median(v):.0f} ({bench.percentile(v, 0.1):.0f}-{bench.percentile(v, 0.9):.0f})"
            if v
            else "-"
            for v in measured.values()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    os.chdir(bench.REPO)
    sys.exit(main())
