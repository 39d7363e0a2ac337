#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 origin for fetchpool's tests (python3 stdlib, asyncio).

It serves deterministic image bodies plus a catalogue of misbehaviours (stalls, resets,
endless bodies, lies about the content type...) so the worker can be tested against the
failures real origins produce. It listens on 127.0.0.1 (`--host` picks another loopback
address, or 0.0.0.0 in the compose test's container). With `--port 0` it picks a
free port and prints `READY <port>` on stdout once it accepts connections, so tests never
assume fixed ports. Run `origin.py --help` for the routes.

The body of /img/<n>.<ext> is a pure function of (n, ext, size): `image_bytes()` is
importable so a test can compute the sha256 it expects without asking the server.
"""

import argparse
import asyncio
import collections
import hashlib
import http
import json
import re
import resource
import signal
import socket
import struct
import sys
import time
import urllib.parse

ROUTES = """\
routes (every route takes ?delay=MS, the first-byte delay; default --delay-ms):
  /img/<n>.jpg|png|gif|webp[?size=B]   deterministic image for n (B bytes, default 16384)
  /status/<code>[?retry_after=S]       that status, small body, optional Retry-After
  /flaky/<n>.<ext>?fail=K&code=C&retry_after=S
                                       first K requests for that exact URL answer C (503),
                                       then the image for n
  /fault/stall                         read the request, never answer
  /fault/stall-body[?size=B]           headers with Content-Length B, then nothing
  /fault/trickle?bps=N[&size=B]        an image sent at N bytes per second
  /fault/endless                       chunked body that never ends, starts with JPEG magic
  /fault/reset[?size=B&sent=S]         headers + S body bytes, then TCP RST (SO_LINGER 0)
  /fault/redirect-loop[?hops=H]        302 to itself (with a counter n), forever; with
                                       hops=H the image for 0 once n reaches H
  /fault/redirect?to=URL[&code=302]    redirect to URL
  /fault/lie                           Content-Type image/jpeg, HTML body
  /fault/robots?tag=noai               a valid JPEG with X-Robots-Tag: <tag>
  /fault/big?size=N                    Content-Length N, JPEG magic then zeros
  /fault/header-bomb?size=B&count=K    K headers of B bytes each (default one of 200000),
                                       then a tiny JPEG
  /fault/bad-chunk                     chunked body with a chunk size that is not hex
  /fault/svg                           an SVG image (image/svg+xml)
  /fault/html                          an HTML page (text/html)
  /echo/<n>.jpg                         the image for n; the request's headers are kept
                                       and listed by /__stats under "headers"
  /robots.txt                          404, or what --robots/--robots-status say
  /__stats                             JSON: {"total": N, "paths": {path: count},
                                       "max_concurrent": N, "max_concurrent_by_host":
                                       {host: N}, "log": [[unix time, path], ...]}
                                       (peaks of requests being answered at once; arrival
                                       of each request, the last 50,000)
"""

# Magic bytes as the WHATWG mimesniff rules match them; WebP gets its RIFF size patched in.
MAGIC = {
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
    "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
}
CONTENT_TYPE = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
}
DEFAULT_SIZE = 16384
MAX_HEADER = 64 * 1024
CHUNK = 64 * 1024

SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="1" '
       b'height="1"><rect width="1" height="1"/></svg>\n')
HTML = b"<!doctype html>\n<html><head><title>not an image</title></head><body>hi</body></html>\n"


def image_bytes(n, ext="jpg", size=DEFAULT_SIZE):
    """Return the body /img/<n>.<ext>?size=<size> serves: magic, then bytes derived from n."""
    magic = MAGIC[ext]
    size = max(int(size), len(magic))
    if ext == "webp":
        magic = magic[:4] + struct.pack("<I", size - 8) + magic[8:]
    seed = ("fetchpool-origin:%s:%s" % (ext, n)).encode()
    return magic + hashlib.shake_256(seed).digest(size - len(magic))


def image_sha256(n, ext="jpg", size=DEFAULT_SIZE):
    return hashlib.sha256(image_bytes(n, ext, size)).hexdigest()


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        parts = urllib.parse.urlsplit(target)
        self.path = parts.path
        self.query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))

    def keep_alive(self):
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def qint(self, name, default):
        try:
            return int(self.query.get(name, default))
        except ValueError:
            return default


class Hold(Exception):
    """Raised by a handler that keeps the connection open without answering."""


class Origin:
    def __init__(self, delay_ms, robots=None, robots_status=None):
        self.delay_ms = delay_ms
        self.robots = robots                # body of /robots.txt (bytes), or None
        self.robots_status = robots_status  # its status (default 200 with a body, else 404)
        self.counts = {}    # path -> requests seen (for /__stats)
        self.flaky = {}     # exact target -> failures served so far
        self.total = 0
        # Requests being answered at once (delay included), overall and per Host header,
        # and the peaks: lets a test check the worker's per-host connection cap.
        self.busy = 0
        self.busy_host = {}
        self.max_busy = 0
        self.max_busy_host = {}
        self.headers = []   # headers of each /echo/ request, in arrival order
        # Arrival time (wall clock, s) and path of each request, the last 50,000: lets a
        # test check per-second rates and pauses.
        self.log = collections.deque(maxlen=50000)

    def _busy(self, host, d):
        self.busy += d
        self.busy_host[host] = self.busy_host.get(host, 0) + d
        self.max_busy = max(self.max_busy, self.busy)
        self.max_busy_host[host] = max(self.max_busy_host.get(host, 0), self.busy_host[host])

    # -- connection handling ---------------------------------------------------------

    async def serve(self, reader, writer):
        try:
            while True:
                req = await self.read_request(reader, writer)
                if req is None:
                    break
                counted = req.path != "/__stats"
                if counted:
                    self.total += 1
                    self.counts[req.path] = self.counts.get(req.path, 0) + 1
                    host = req.headers.get("host", "")
                    self._busy(host, 1)
                    self.log.append((round(time.time(), 4), req.path))
                try:
                    delay = req.qint("delay", self.delay_ms)
                    if delay > 0 and counted:
                        await asyncio.sleep(delay / 1000.0)
                    keep = await self.dispatch(req, reader, writer)
                finally:
                    if counted:
                        self._busy(host, -1)
                if not keep or not req.keep_alive():
                    break
        except Hold:
            # Keep the socket open until the client gives up.
            try:
                while await reader.read(4096):
                    pass
            except (ConnectionError, OSError):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            await self.send(writer, 431, b"header too large\n", close=True)
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self.send(writer, 400, b"bad request line\n", close=True)
            return None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        # Our clients send no bodies, but stay in sync on the connection if one does.
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        return Request(method, target, version, headers)

    async def send(self, writer, code, body=b"", ctype="text/plain", extra=None,
                   close=False, head=False):
        hdrs = [
            "HTTP/1.1 %d %s" % (code, reason(code)),
            "Content-Type: %s" % ctype,
            "Content-Length: %d" % len(body),
            "Connection: %s" % ("close" if close else "keep-alive"),
        ]
        for k, v in (extra or {}).items():
            hdrs.append("%s: %s" % (k, v))
        data = ("\r\n".join(hdrs) + "\r\n\r\n").encode("latin-1")
        writer.write(data if head else data + body)
        await writer.drain()
        return not close

    async def send_head(self, writer, code, headers):
        lines = ["HTTP/1.1 %d %s" % (code, reason(code))]
        lines += ["%s: %s" % kv for kv in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()

    # -- routes ------------------------------------------------------------------------

    async def dispatch(self, req, reader, writer):
        """Answer one request; return False when the connection must close after it."""
        head = req.method == "HEAD"
        p = req.path
        m = re.fullmatch(r"/img/(\d+)\.(jpg|png|gif|webp)", p)
        if m:
            return await self.image(writer, req, int(m.group(1)), m.group(2), head)
        m = re.fullmatch(r"/status/(\d{3})", p)
        if m:
            code = int(m.group(1))
            extra = {}
            if "retry_after" in req.query:
                extra["Retry-After"] = req.query["retry_after"]
            if code in (301, 302, 303, 307, 308):
                extra["Location"] = req.query.get("to", "/img/0.jpg")
            body = b"" if code in (204, 304) else ("status %d\n" % code).encode()
            return await self.send(writer, code, body, extra=extra, head=head)
        m = re.fullmatch(r"/echo/(\d+)\.jpg", p)
        if m:
            self.headers.append(req.headers)
            return await self.image(writer, req, int(m.group(1)), "jpg", head)
        m = re.fullmatch(r"/flaky/(\d+)\.(jpg|png|gif|webp)", p)
        if m:
            seen = self.flaky.get(req.target, 0)
            if seen < req.qint("fail", 1):
                self.flaky[req.target] = seen + 1
                extra = {}
                if "retry_after" in req.query:
                    extra["Retry-After"] = req.query["retry_after"]
                code = req.qint("code", 503)
                return await self.send(writer, code, b"flaky\n", extra=extra, head=head)
            return await self.image(writer, req, int(m.group(1)), m.group(2), head)
        if p == "/robots.txt" and (self.robots is not None or self.robots_status):
            code = self.robots_status or 200
            body = self.robots if self.robots is not None else ("status %d\n" % code).encode()
            return await self.send(writer, code, body, head=head)
        if p == "/__stats":
            body = json.dumps({"total": self.total, "paths": self.counts,
                               "max_concurrent": self.max_busy,
                               "max_concurrent_by_host": self.max_busy_host,
                               "headers": self.headers, "log": list(self.log)},
                              sort_keys=True)
            return await self.send(writer, 200, body.encode(), "application/json", head=head)
        if p.startswith("/fault/"):
            handler = getattr(self, "fault_" + p[len("/fault/"):].replace("-", "_"), None)
            if handler:
                return await handler(req, reader, writer)
        return await self.send(writer, 404, b"not found\n", head=head)

    async def image(self, writer, req, n, ext, head=False, extra=None):
        body = image_bytes(n, ext, req.qint("size", DEFAULT_SIZE))
        return await self.send(writer, 200, body, CONTENT_TYPE[ext], extra=extra, head=head)

    async def fault_stall(self, req, reader, writer):
        raise Hold()

    async def fault_stall_body(self, req, reader, writer):
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Content-Length", req.qint("size", DEFAULT_SIZE))])
        raise Hold()

    async def fault_trickle(self, req, reader, writer):
        bps = max(1, req.qint("bps", 100))
        body = image_bytes(0, "jpg", req.qint("size", 4096))
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Content-Length", len(body))])
        # Ten slices a second (at least one byte each) keeps the rate close to bps.
        step = max(1, bps // 10)
        for i in range(0, len(body), step):
            writer.write(body[i:i + step])
            await writer.drain()
            await asyncio.sleep(step / bps)
        return True

    async def fault_endless(self, req, reader, writer):
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Transfer-Encoding", "chunked")])
        first = MAGIC["jpg"] + bytes(CHUNK - len(MAGIC["jpg"]))
        chunk = b"%x\r\n%s\r\n" % (len(first), first)
        writer.write(chunk)
        filler = b"%x\r\n%s\r\n" % (CHUNK, bytes(CHUNK))
        while True:   # ends when the client hangs up (drain raises)
            writer.write(filler)
            await writer.drain()

    async def fault_reset(self, req, reader, writer):
        size = req.qint("size", DEFAULT_SIZE)
        sent = min(req.qint("sent", size // 4), size)
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Content-Length", size)])
        writer.write(image_bytes(0, "jpg", size)[:sent])
        await writer.drain()
        # Let the kernel push the partial body out: a zero linger close drops unsent data.
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False

    async def fault_redirect_loop(self, req, reader, writer):
        n = req.qint("n", 0)
        hops = req.qint("hops", -1)
        if 0 <= hops <= n:   # a chain of exactly `hops` redirects, then an image
            return await self.image(writer, req, 0, "jpg", req.method == "HEAD")
        loc = "/fault/redirect-loop?n=%d" % (n + 1)
        if hops >= 0:
            loc += "&hops=%d" % hops
        return await self.send(writer, 302, b"again\n", extra={"Location": loc},
                               head=req.method == "HEAD")

    async def fault_redirect(self, req, reader, writer):
        code = req.qint("code", 302)
        to = req.query.get("to", "/img/0.jpg")
        return await self.send(writer, code, b"moved\n", extra={"Location": to},
                               head=req.method == "HEAD")

    async def fault_lie(self, req, reader, writer):
        return await self.send(writer, 200, HTML, "image/jpeg", head=req.method == "HEAD")

    async def fault_robots(self, req, reader, writer):
        tag = req.query.get("tag", "noai")
        return await self.image(writer, req, req.qint("n", 0), "jpg", req.method == "HEAD",
                                extra={"X-Robots-Tag": tag})

    async def fault_big(self, req, reader, writer):
        size = max(req.qint("size", 100 * 1024 * 1024), len(MAGIC["jpg"]))
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Content-Length", size)])
        if req.method == "HEAD":
            return True
        writer.write(MAGIC["jpg"])
        left = size - len(MAGIC["jpg"])
        zeros = bytes(CHUNK)
        while left > 0:
            n = min(left, CHUNK)
            writer.write(zeros[:n])
            await writer.drain()
            left -= n
        return True

    async def fault_header_bomb(self, req, reader, writer):
        size, count = max(1, req.qint("size", 200000)), max(1, req.qint("count", 1))
        body = image_bytes(0, "jpg", 64)
        await self.send_head(writer, 200, [("X-Filler-%d" % i, "a" * size) for i in range(count)]
                             + [("Content-Type", "image/jpeg"), ("Content-Length", len(body))])
        writer.write(body)
        await writer.drain()
        return False

    async def fault_bad_chunk(self, req, reader, writer):
        await self.send_head(writer, 200, [("Content-Type", "image/jpeg"),
                                           ("Transfer-Encoding", "chunked")])
        writer.write(b"zz\r\n" + MAGIC["jpg"] + b"\r\n0\r\n\r\n")
        await writer.drain()
        return False

    async def fault_svg(self, req, reader, writer):
        return await self.send(writer, 200, SVG, "image/svg+xml", head=req.method == "HEAD")

    async def fault_html(self, req, reader, writer):
        return await self.send(writer, 200, HTML, "text/html", head=req.method == "HEAD")


def reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def raise_nofile():
    # ~1000 concurrent clients need more descriptors than a 1024 soft limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


async def main_async(args):
    robots = None
    if args.robots:
        with open(args.robots, "rb") as f:
            robots = f.read()
    origin = Origin(args.delay_ms, robots, args.robots_status)
    server = await asyncio.start_server(origin.serve, args.host, args.port,
                                        backlog=4096, limit=MAX_HEADER)
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser(
        description="Fault-injecting HTTP/1.1 origin for fetchpool tests (127.0.0.1 only).",
        epilog=ROUTES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0,
                    help="port to listen on; 0 picks a free one (default 0)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on: 127.x.y.z, or 0.0.0.0 inside a test "
                         "container (default 127.0.0.1)")
    ap.add_argument("--delay-ms", type=int, default=0,
                    help="default first-byte delay in milliseconds (default 0)")
    ap.add_argument("--robots", metavar="FILE",
                    help="serve FILE as /robots.txt (with --robots-status, or 200)")
    ap.add_argument("--robots-status", type=int, metavar="CODE",
                    help="status of /robots.txt (default: 200 with --robots, else 404)")
    args = ap.parse_args()
    if not (args.host.startswith("127.") or args.host == "0.0.0.0"):
        ap.error("--host must be a loopback address (127.x.y.z), or 0.0.0.0 in a container")
    raise_nofile()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
