#!/usr/bin/env python3
"""Runs tests/origin.py's test origin on all addresses of a container (compose tests only).

origin.py listens on 127.0.0.1, which other containers cannot reach; this reuses its
request handling (origin.Origin) on 0.0.0.0 so workers on the compose network can fetch
http://origin:8080/img/<n>.jpg. Prints `READY <port>` like origin.py, stops on SIGTERM.
"""

import argparse
import asyncio
import signal

import origin


async def serve(port, delay_ms):
    handler = origin.Origin(delay_ms)
    server = await asyncio.start_server(handler.serve, "0.0.0.0", port,
                                        backlog=4096, limit=origin.MAX_HEADER)
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    origin.raise_nofile()
    asyncio.run(serve(args.port, args.delay_ms))


if __name__ == "__main__":
    main()
