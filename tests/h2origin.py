#!/usr/bin/python3
"""A fault-injecting HTTP/2 origin over TLS for fetchpool's test world.

Needs Debian's python3-h2 (hyper-h2, the standard Python HTTP/2 state machine); run it
with Debian's /usr/bin/python3. It speaks only h2 (ALPN) and serves:
  /img/<n>.jpg         the image tests/origin.py serves for n (16384 bytes)
  /refuse/<n>.jpg      first request for that path: RST_STREAM REFUSED_STREAM; then the image
  /goaway/<n>.jpg      first request for that path: GOAWAY that leaves the stream
                       unprocessed, and the connection closes; then the image
  /flood               a response whose header block never ends (CONTINUATION frames of
                       junk headers until the client goes away)
  /__stats             JSON {"paths": {path: requests}, "connections": N}
It prints READY once it listens.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import ContinuationFrame, HeadersFrame

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import origin  # noqa: E402  (image_bytes)

STATS = {"paths": {}, "connections": 0}
SEEN = set()


def respond(conn, sid, body, ctype="image/jpeg"):
    conn.send_headers(sid, [(":status", "200"), ("content-type", ctype),
                            ("content-length", str(len(body)))])
    conn.send_data(sid, body, end_stream=True)


async def flood(conn, sid, writer):
    """HEADERS without END_HEADERS, then CONTINUATION frames for ever."""
    block = conn.encoder.encode([(":status", "200"), ("content-type", "image/jpeg")])
    f = HeadersFrame(sid)
    f.data = block
    writer.write(conn.data_to_send() + f.serialize())
    i = 0
    while True:
        c = ContinuationFrame(sid)
        c.data = conn.encoder.encode([("x-junk-%d" % i, "j" * 4000)])
        writer.write(c.serialize())
        i += 1
        await writer.drain()
        await asyncio.sleep(0)   # drain() need not yield: let the other connections run


async def serve(reader, writer):
    STATS["connections"] += 1
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                 header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            close = False
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    path = dict(ev.headers).get(":path", "/").split("?")[0]
                    STATS["paths"][path] = STATS["paths"].get(path, 0) + 1
                    first = path not in SEEN
                    SEEN.add(path)
                    sid = ev.stream_id
                    if path == "/__stats":
                        respond(conn, sid, json.dumps(STATS).encode(), "application/json")
                    elif path == "/flood":
                        await flood(conn, sid, writer)
                    elif path.startswith("/refuse/") and first:
                        conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                    elif path.startswith("/goaway/") and first:
                        conn.close_connection(h2.errors.ErrorCodes.NO_ERROR,
                                              last_stream_id=max(sid - 2, 0))
                        close = True
                    else:
                        n = path.rsplit("/", 1)[-1].split(".")[0]
                        if n.isdigit():
                            respond(conn, sid, origin.image_bytes(int(n), "jpg"))
                        else:
                            conn.send_headers(sid, [(":status", "404")], end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
            if close:
                break
    except (ConnectionError, OSError, h2.exceptions.ProtocolError):
        pass
    finally:
        writer.close()


async def main_async(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2"])
    srv = await asyncio.start_server(serve, args.host, args.port, ssl=ctx, backlog=512)
    print("READY", flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.3.6")
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    if not args.host.startswith("127."):
        sys.exit("h2origin.py: loopback addresses only")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
