#!/usr/bin/python3
"""A TCP proxy for tests: forwards loopback connections to a server and can make any one of
them half-open on command.

A frozen link stops forwarding in both directions but keeps both sockets open, as when a NAT
or a firewall drops a connection silently or the far host vanishes: the client's writes
still succeed (they pile up in socket buffers), no reply ever comes, and no FIN or RST tells
anyone. The server side stays open too, so a command already forwarded still runs there (a
BLMOVE blocked in Redis may still move a task) and its reply is lost. A held link freezes
just before forwarding a given command and forwards it on release(): the test decides when
it runs (a BLMOVE released once the queue has tasks surely moves one). A cut link is closed
on both sides at once.

Each link remembers the first bytes its client sent (`sent`), so a test can tell a worker's
connections apart by what they say (its pulling connection sends BLMOVE, its command
connection the heartbeat). Used in-process (threads) by tests/integration and
scripts/bench.d/chaos:

    p = Proxy(redis_port); p.start()         # p.port: where clients connect
    link = p.wait_link(lambda l: b"BLMOVE" in l.sent)
    link.freeze()
"""

import socket
import threading
import time

SNIFF_MAX = 1 << 20   # bytes of each client's first traffic kept for matching


class Link:
    """One proxied connection: client <-> server, two forwarding threads."""

    def __init__(self, proxy, client, server):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.sent = bytearray()   # the client's first bytes (up to SNIFF_MAX)
        self.frozen = False
        self.closed = False
        self.freeze_on = None     # freeze right after forwarding client bytes holding this
        self.hold_on = None       # freeze before forwarding client bytes holding this
        self.held = False         # such bytes wait in the pump until release()
        self.opened = time.monotonic()
        self._lock = threading.Lock()

    def start(self):
        for src, dst, up in ((self.client, self.server, True), (self.server, self.client, False)):
            threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src, dst, up):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            # Frozen: hold what was read, read no more (the peer's bytes stay in the kernel
            # buffers), forward nothing, close nothing.
            while self.frozen and not self.closed:
                time.sleep(0.05)
            if self.closed:
                return
            if not data:
                self.close()
                return
            if up and len(self.sent) < SNIFF_MAX:
                with self._lock:
                    self.sent += data[:SNIFF_MAX - len(self.sent)]
            if up and self.hold_on is not None and self.hold_on in data:
                self.hold_on = None
                self.held = self.frozen = True
                while self.held and not self.closed:
                    time.sleep(0.005)
                if self.closed:
                    return
            try:
                dst.sendall(data)
            except OSError:
                self.close()
                return
            if up and self.freeze_on is not None and self.freeze_on in data:
                self.frozen = True

    def freeze(self):
        """Stop forwarding both ways; keep both sockets open (a half-open link)."""
        self.frozen = True

    def freeze_after(self, pattern):
        """Freeze once the client has sent bytes holding pattern (they still reach the
        server: its reply is what gets lost)."""
        self.freeze_on = pattern

    def hold_at(self, pattern):
        """Freeze once the client sends bytes holding pattern, before they reach the
        server: they wait until release(), so a test decides when the command runs."""
        self.hold_on = pattern

    def release(self):
        """Forward the bytes hold_at() held back; the link stays frozen (their reply is
        lost)."""
        self.held = False

    def wait_frozen(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.frozen and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self.frozen:
            raise RuntimeError("link not frozen within %.0fs: %r" % (timeout, self))

    def close(self):
        """Close both sides (the frozen ones too)."""
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    cut = close

    @property
    def live(self):
        return not self.closed and not self.frozen

    def __repr__(self):
        return "<Link %s%s sent=%r>" % ("frozen " if self.frozen else "",
                                         "closed" if self.closed else "open",
                                         bytes(self.sent[:60]))


class Proxy:
    """Listens on a free loopback port (or `port`), forwards every connection to
    target_host:target_port."""

    def __init__(self, target_port, target_host="127.0.0.1", port=0):
        self.target = (target_host, target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.links = []
        self._stop = False

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = Link(self, client, server)
            self.links.append(link)
            link.start()

    def find(self, pred):
        """Open, unfrozen links for which pred(link) is true, oldest first."""
        return [link for link in list(self.links) if link.live and pred(link)]

    def wait_link(self, pred, timeout=10.0):
        """The newest open, unfrozen link matching pred, waiting for one to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(pred)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise RuntimeError("no proxied link matched within %.0fs: %r" % (timeout, self.links))

    def close(self):
        """Stop listening (a client's next connect is refused) and cut every link."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes the accept() (close alone does not)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        for link in list(self.links):
            link.close()
