#!/usr/bin/env python3
"""An added-latency TCP proxy that counts protocol round trips (asyncio, stdlib only).

    latency_proxy.py --upstream-port P [--delay-ms D] [--port 0] --ready-file F [--summary-file S]

Listens on 127.0.0.1 (port 0: any free port, written as {"port": N} to --ready-file) and forwards
every connection to 127.0.0.1:P.

Latency model (D = --delay-ms, the one-way delay; one round trip = 2·D):
  * every chunk read from either side is written to the other side D ms after it was read, in
    order (a per-direction FIFO with a deadline per chunk, so chunks are delayed, not serialised:
    a burst costs D once, not D per chunk);
  * the upstream connection is opened D ms after the client's connection was accepted (the SYN's
    one-way trip), and the greeting then takes D back, so the first server byte reaches the
    client 2·D (one round trip) after it connected, as on a real network. The client's own
    connect() returns at once on loopback; that round trip is represented by the delay of the
    greeting and is counted as one round trip below.

What it counts, per connection (the unit the protocol floor is stated in):
  round_trips = 1 (the TCP connect)
              + 1 when the server speaks first and the client waits for it (the plaintext 220
                greeting; with implicit TLS the greeting answers the client's TLS Finished)
              + the number of client FLIGHTS that were answered.
  That is: the connect plus every time the client had to wait for the server. On a real network
  the greeting cannot ride on the TCP handshake (the server accepts, then writes), which is why
  it is a round trip of its own.
  A flight is a maximal run of client->server bytes with no server->client bytes in between
  (in the order the proxy reads them, which is causal: the server can only answer what it has
  been sent). A flight is answered when server->client bytes follow it. Several commands
  pipelined in one flight (RFC 2920) count once; a TLS ClientHello is a flight; the client's TLS
  Finished sent together with its first command is one flight; a final flight that gets no
  answer (e.g. QUIT whose 221 never came) is reported in unanswered_flights, not counted.
  Server bytes that arrive before any client flight (the greeting) or after an answered flight
  without a new client flight (e.g. TLS 1.3 session tickets next to a reply) add nothing.

Two effects the counts show (checked with a hand-driven client against Postfix, D = 10 ms):
  * Nagle: a client that writes its TLS Finished and then EHLO as two small writes without
    TCP_NODELAY has the EHLO held back until the Finished is ACKed, which costs an extra round
    trip. Set TCP_NODELAY (quizmail does).
  * Implicit TLS: servers send the 220 greeting only after the client's TLS Finished, so the
    Finished is a flight of its own, answered by the greeting: connect, ClientHello, Finished,
    EHLO, AUTH, transaction = 6 with PIPELINING + CHUNKING.

At connection end it prints one JSON line to stdout and appends it to --summary-file:
  {"connection": n, "round_trips": R, "flights": F, "unanswered_flights": U,
   "bytes_client_to_server": a, "bytes_server_to_client": b, "elapsed_ms": t, "delay_ms": D}
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time


class Counter:
    """Turns the order of chunk arrivals into flights and answered flights."""

    def __init__(self, trace=None):
        self.trace = trace
        self.flights = 0
        self.answered = 0
        self.last = None  # "c" or "s": direction of the previous chunk
        self.greeting_waited = False  # the server spoke first and the client waited for it
        self.bytes_c2s = 0
        self.bytes_s2c = 0

    def client_chunk(self, chunk):
        self.bytes_c2s += len(chunk)
        if self.last != "c":
            self.flights += 1
        self.last = "c"
        self._trace("C", chunk)

    def server_chunk(self, chunk):
        self.bytes_s2c += len(chunk)
        if self.last == "c":
            self.answered += 1
        elif self.last is None:
            self.greeting_waited = True
        self.last = "s"
        self._trace("S", chunk)

    def _trace(self, side, chunk):
        if self.trace:
            self.trace(f"flight {self.flights} {side} {len(chunk):5d} bytes {chunk[:40]!r}")


async def pump(reader, writer, delay, on_chunk):
    """Read chunks and write each one `delay` seconds after it was read, preserving order."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def sender():
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if chunk is None:
                if writer.can_write_eof():
                    try:
                        writer.write_eof()
                    except OSError:
                        pass
                return
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError:
                return

    task = asyncio.create_task(sender())
    try:
        while True:
            try:
                chunk = await reader.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            on_chunk(chunk)
            queue.put_nowait((loop.time() + delay, chunk))
    finally:
        queue.put_nowait((loop.time() + delay, None))
        await task


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--upstream-host", default="127.0.0.1")
    p.add_argument("--delay-ms", type=float, default=25.0)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--summary-file")
    p.add_argument("--trace", action="store_true",
                   help="log every chunk (direction, size, first bytes) to stderr")
    a = p.parse_args()
    delay = a.delay_ms / 1000.0
    connections = 0

    async def handle(creader, cwriter):
        nonlocal connections
        connections += 1
        n = connections
        start = time.monotonic()
        counter = Counter(
            (lambda m: print(f"[{n}] {m}", file=sys.stderr, flush=True)) if a.trace else None)
        await asyncio.sleep(delay)  # the SYN's one-way trip before the server sees the connection
        try:
            sreader, swriter = await asyncio.open_connection(a.upstream_host, a.upstream_port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(
            pump(creader, swriter, delay, counter.client_chunk),
            pump(sreader, cwriter, delay, counter.server_chunk),
        )
        for w in (swriter, cwriter):
            w.close()
        summary = {
            "connection": n,
            "round_trips": 1 + counter.greeting_waited + counter.answered,
            "flights": counter.flights,
            "unanswered_flights": counter.flights - counter.answered,
            "bytes_client_to_server": counter.bytes_c2s,
            "bytes_server_to_client": counter.bytes_s2c,
            "elapsed_ms": round((time.monotonic() - start) * 1000, 1),
            "delay_ms": a.delay_ms,
        }
        line = json.dumps(summary)
        print(line, flush=True)
        if a.summary_file:
            with open(a.summary_file, "a") as f:
                f.write(line + "\n")

    async def run():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(handle, "127.0.0.1", a.port)
        port = server.sockets[0].getsockname()[1]
        tmp = f"{a.ready_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"port": port, "pid": os.getpid()}, f)
        os.replace(tmp, a.ready_file)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
