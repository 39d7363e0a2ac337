"""Tests of the test tools themselves: tests/origin.py routes and the fp_harness servers.

If these fail, the fetchpool integration tests cannot be trusted, so they run first and
need no fetchpool binary. Run alone: /usr/bin/python3 tests/integration/test_origin.py
"""

import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from origin import MAGIC, image_bytes  # noqa: E402


class OriginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = fp.Cluster("origin")
        cls.origin = cls.cluster.start_origin()
        cls.port = cls.origin.port

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, timeout=10):
        c = self.conn(timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    def test_images_have_magic_type_and_size(self):
        for ext, ctype in (("jpg", "image/jpeg"), ("png", "image/png"),
                           ("gif", "image/gif"), ("webp", "image/webp")):
            r, body = self.get("/img/7.%s?size=1000" % ext)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Type"), ctype)
            self.assertEqual(len(body), 1000)
            self.assertEqual(body, image_bytes(7, ext, 1000))
            self.assertTrue(body.startswith(MAGIC[ext][:4]))
        _, webp = self.get("/img/7.webp?size=1000")
        self.assertEqual(webp[8:14], b"WEBPVP")
        self.assertEqual(int.from_bytes(webp[4:8], "little"), 992)

    def test_images_are_deterministic_and_distinct(self):
        _, a1 = self.get("/img/1.jpg")
        _, a2 = self.get("/img/1.jpg")
        _, b = self.get("/img/2.jpg")
        self.assertEqual(a1, a2)
        self.assertNotEqual(a1, b)
        self.assertEqual(len(a1), 16384)
        self.assertEqual(hashlib.sha256(a1).hexdigest(), fp.origin_mod.image_sha256(1))

    def test_keep_alive(self):
        c = self.conn()
        socks = set()
        for i in range(5):
            c.request("GET", "/img/%d.png" % i)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            socks.add(id(c.sock))
        c.close()
        self.assertEqual(len(socks), 1)

    def test_delay(self):
        t0 = time.monotonic()
        self.get("/img/1.jpg?delay=300")
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_status_and_retry_after(self):
        r, _ = self.get("/status/404")
        self.assertEqual(r.status, 404)
        r, _ = self.get("/status/429?retry_after=7")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.getheader("Retry-After"), "7")

    def test_flaky(self):
        path = "/flaky/3.jpg?fail=2&code=503&retry_after=1"
        codes = [self.get(path)[0].status for _ in range(3)]
        self.assertEqual(codes, [503, 503, 200])
        r, body = self.get(path)
        self.assertEqual(body, image_bytes(3, "jpg"))

    def test_stall(self):
        c = self.conn(timeout=0.5)
        c.request("GET", "/fault/stall")
        with self.assertRaises(socket.timeout):
            c.getresponse()
        c.close()

    def test_stall_body(self):
        c = self.conn(timeout=0.5)
        c.request("GET", "/fault/stall-body?size=100")
        r = c.getresponse()
        self.assertEqual(r.getheader("Content-Length"), "100")
        with self.assertRaises(socket.timeout):
            r.read()
        c.close()

    def test_trickle(self):
        t0 = time.monotonic()
        r, body = self.get("/fault/trickle?bps=1000&size=500")
        self.assertEqual(len(body), 500)
        self.assertTrue(body.startswith(MAGIC["jpg"][:3]))
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)

    def test_endless(self):
        c = self.conn()
        c.request("GET", "/fault/endless")
        r = c.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        got = r.read(1 << 20)
        self.assertEqual(len(got), 1 << 20)
        self.assertTrue(got.startswith(b"\xff\xd8\xff"))
        c.close()

    def test_reset(self):
        c = self.conn()
        c.request("GET", "/fault/reset?size=10000&sent=1000")
        r = c.getresponse()
        with self.assertRaises((http.client.IncompleteRead, ConnectionResetError)):
            r.read()
        c.close()

    def test_redirects(self):
        r, _ = self.get("/fault/redirect-loop")
        self.assertEqual(r.status, 302)
        self.assertEqual(r.getheader("Location"), "/fault/redirect-loop?n=1")
        r, _ = self.get("/fault/redirect?to=/img/1.jpg")
        self.assertEqual((r.status, r.getheader("Location")), (302, "/img/1.jpg"))

    def test_content_faults(self):
        r, body = self.get("/fault/lie")
        self.assertEqual(r.getheader("Content-Type"), "image/jpeg")
        self.assertTrue(body.startswith(b"<!doctype html>"))
        r, body = self.get("/fault/robots?tag=noai")
        self.assertEqual(r.getheader("X-Robots-Tag"), "noai")
        self.assertTrue(body.startswith(b"\xff\xd8\xff"))
        r, body = self.get("/fault/svg")
        self.assertEqual(r.getheader("Content-Type"), "image/svg+xml")
        r, body = self.get("/fault/html")
        self.assertEqual(r.getheader("Content-Type"), "text/html")
        r, body = self.get("/fault/big?size=3000000")
        self.assertEqual(len(body), 3000000)
        self.assertTrue(body.startswith(b"\xff\xd8\xff"))

    def test_zz_stats(self):
        self.get("/img/99.jpg")
        self.get("/img/99.jpg")
        stats = self.origin.stats()
        self.assertEqual(stats["paths"]["/img/99.jpg"], 2)
        self.assertGreater(stats["total"], 2)

    def test_many_concurrent_connections(self):
        """~1000 clients connected at once, each served after a shared delay."""
        n, errors, done = 1000, [], []
        socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(b"GET /img/%d.gif?size=100&delay=500 HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n" % i)
        t0 = time.monotonic()

        def reader(chunk):
            for i, s in chunk:
                try:
                    data = b""
                    while True:
                        part = s.recv(65536)
                        if not part:
                            break
                        data += part
                    head, _, body = data.partition(b"\r\n\r\n")
                    if head.startswith(b"HTTP/1.1 200") and body == image_bytes(i, "gif", 100):
                        done.append(i)
                    else:
                        errors.append(data[:40])
                except OSError as e:
                    errors.append(repr(e))
                finally:
                    s.close()

        threads = [threading.Thread(target=reader, args=(list(enumerate(socks))[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(done), n)
        # All delays overlap: far less than n * 0.5 s.
        self.assertLess(time.monotonic() - t0, 10)


class HarnessTest(unittest.TestCase):
    def test_redis_nginx_resp(self):
        with fp.Cluster("harness") as c:
            c.start_redis()
            r = c.redis()
            self.assertEqual(r.call("PING"), "PONG")
            self.assertEqual(r.call("RPUSH", "l", "a", "b\tc"), 2)
            self.assertEqual(r.call("LRANGE", "l", 0, -1), ["a", "b\tc"])
            self.assertIsNone(r.call("GET", "missing"))
            r.call("HSET", "h", "k", "v", "n", 3)
            self.assertEqual(r.hgetall("h"), {"k": "v", "n": "3"})
            self.assertEqual(r.keys("*"), ["h", "l"])
            with self.assertRaises(fp.RespError):
                r.call("LPUSH", "h", "x")
            self.assertEqual(r.call("CONFIG", "GET", "appendonly"), ["appendonly", "no"])

            files = fp.make_jpegs(c.path("www"), 5)
            ng = c.start_nginx(c.path("www"))
            conn = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=5)
            for name, sha in files:
                conn.request("GET", "/" + name)
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.getheader("Content-Type"), "image/jpeg")
                self.assertEqual(hashlib.sha256(body).hexdigest(), sha)
            conn.request("GET", "/nope.jpg")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 404)
            conn.close()

            refused = c.closed_port()
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", refused), timeout=2)
            pids = [p.pid for p in [ng.proc, c.redis_srv.proc]]
            tmp = c.dir
        for pid in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(pid, 0)
        self.assertFalse(os.path.exists(tmp))

    def test_redis_aof_restart_keeps_data(self):
        with fp.Cluster("aof") as c:
            srv = c.start_redis(aof=True)
            r = srv.client()
            r.call("CONFIG", "SET", "appendfsync", "always")
            r.call("SET", "k", "v")
            r.close()
            port = srv.port
            srv.restart()
            self.assertEqual(srv.port, port)
            r = c.redis()
            self.assertEqual(r.call("GET", "k"), "v")

    def test_password(self):
        with fp.Cluster("auth") as c:
            srv = c.start_redis(password="s3cret")
            self.assertEqual(c.redis().call("PING"), "PONG")
            self.assertIn(":s3cret@", srv.url)


if __name__ == "__main__":
    fp.main()
