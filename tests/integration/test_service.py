"""Running fetchpool as a service: Prometheus metrics, status, cancel, pause, retry, --skip-ok.

A real Prometheus (Debian's `prometheus`) scrapes the master's /metrics during a job and
its HTTP API must then give the job's summary back; `scripts/fetchpool` is driven as a user
would (status, --json, cancel, pause/resume, retry, submit --skip-ok) against a real Redis,
master, workers and origin on loopback.
Run alone: /usr/bin/python3 tests/integration/test_service.py --bin build/bin
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

FETCHPOOL = os.path.join(fp.REPO, "scripts", "fetchpool")
PY = "/usr/bin/python3"  # Debian's, with python3-redis

PROM_CONF = """\
global:
  scrape_interval: 300ms
  scrape_timeout: 250ms
scrape_configs:
  - job_name: fetchpool
    static_configs:
      - targets: ['127.0.0.1:%d']
"""


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping one target."""

    def __init__(self, cluster, target_port):
        exe = shutil.which("prometheus")
        if exe is None:
            # A failure, not a skip: ctest would count a skipped test as passed.
            raise RuntimeError("prometheus not installed (scripts/lib/packages.sh, test group)")
        conf = cluster.path("prometheus.yml")
        with open(conf, "w") as f:
            f.write(PROM_CONF % target_port)
        self.port = fp.free_port()
        argv = [exe, "--config.file", conf, "--storage.tsdb.path", cluster.mkdir("tsdb"),
                "--web.listen-address", "127.0.0.1:%d" % self.port, "--log.level", "warn"]
        self.proc = fp.Proc("prometheus", argv, cluster.dir)
        cluster.procs.append(self.proc)
        fp.wait_port(self.port, self.proc.popen, timeout=30, what="prometheus")
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.query('up{job="fetchpool"}') == {frozenset(): 1.0}:
                    break
            except (OSError, ValueError):  # 503 while it starts up
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not scrape the master within 30 s")
            time.sleep(0.1)

    def query(self, q):
        """The instant vector of q as {frozenset(labels minus job/instance): value}."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": q}))
        out = json.loads(http_get(url))
        if out.get("status") != "success":
            raise AssertionError("prometheus query %r: %r" % (q, out))
        res = {}
        for s in out["data"]["result"]:
            labels = {k: v for k, v in s["metric"].items()
                      if k not in ("job", "instance", "__name__")}
            res[frozenset(labels.items())] = float(s["value"][1])
        return res


def fetchpool_cli(cluster, *args, timeout=60):
    argv = [PY, FETCHPOOL, "--redis", cluster.redis_srv.url] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=cluster.env())


class MetricsTest(unittest.TestCase):
    """--metrics serves the Prometheus text format; a real Prometheus reads it."""

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis()

    def test_prometheus_scrapes_a_job_and_matches_its_summary(self):
        c = self.c
        origin = c.start_origin(delay_ms=250)
        port = fp.free_port()
        c.start_master("--metrics", str(port))
        fp.wait_port(port, c.master.popen, what="metrics endpoint")
        c.start_worker(None, "--host-conns", "0", concurrency=16)
        c.wait_workers_registered(1)
        prom = Prometheus(c, port)
        n_ok, n_404, n_503 = 60, 15, 10
        urls = ([origin.url("/img/%d.jpg?size=2000" % i) for i in range(n_ok)] +
                [origin.url("/status/404?n=%d" % i) for i in range(n_404)] +
                [origin.url("/status/503?n=%d" % i) for i in range(n_503)] +
                ["not a url"])
        src = c.write_input(urls)
        s = c.submit("--wait", "--attempts", "1", src, timeout=120)
        self.assertEqual(s.rc, 1, s)
        self.assertEqual(s.summary.get("ok"), str(n_ok), s)
        want = {
            frozenset({("status", "ok")}): n_ok,
            frozenset({("status", "failed"), ("reason", "http_404")}): n_404,
            frozenset({("status", "failed"), ("reason", "http_503")}): n_503,
            frozenset({("status", "failed"), ("reason", "invalid_input")}): 1,
        }
        self.assertEqual({k: int(s.summary["fail:" + dict(k)["reason"]]) for k in want
                          if dict(k)["status"] == "failed"},
                         {k: v for k, v in want.items() if dict(k)["status"] == "failed"})
        # Prometheus scrapes every 300 ms; wait until a scrape after the job is in.
        deadline = time.monotonic() + 30
        got = {}
        while time.monotonic() < deadline:
            got = prom.query("fetchpool_downloads_total")
            if got == want:
                break
            time.sleep(0.3)
        self.assertEqual(got, want, c.logs())
        self.assertEqual(prom.query("fetchpool_downloaded_bytes_total"),
                         {frozenset(): float(s.summary["bytes"])})
        self.assertEqual(prom.query("fetchpool_download_duration_seconds_count"),
                         {frozenset(): float(n_ok)})
        # 250 ms answers: none under 0.1 s, all under 2.5 s.
        self.assertEqual(prom.query('fetchpool_download_duration_seconds_bucket{le="0.1"}'),
                         {frozenset({("le", "0.1")}): 0.0})
        self.assertEqual(prom.query('fetchpool_download_duration_seconds_bucket{le="2.5"}'),
                         {frozenset({("le", "2.5")}): float(n_ok)})
        self.assertEqual(prom.query('fetchpool_jobs_finished_total{state="done"}'),
                         {frozenset({("state", "done")}): 1.0})
        # It scraped while the job ran: the job's own series existed then.
        seen = prom.query('max_over_time(fetchpool_job_tasks{job_id="%s"}[5m])' % s.job)
        self.assertEqual(list(seen.values()), [float(len(urls))], seen)
        self.assertEqual(prom.query("fetchpool_workers_alive"), {frozenset(): 1.0})
        self.assertEqual(prom.query('up{job="fetchpool"}'), {frozenset(): 1.0})
        # The text itself: conventions a scraper relies on.
        text = http_get("http://127.0.0.1:%d/metrics" % port)
        self.assertIn("# TYPE fetchpool_downloads_total counter", text)
        self.assertRegex(text, r'\nfetchpool_worker_inflight\{worker="w1"\} \d+\n')
        self.assertIn("fetchpool_master_redis_reconnects_total 0", text)
        lint = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"],
                              input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual((lint.returncode, lint.stdout + lint.stderr), (0, ""), text)
        with self.assertRaises(urllib.error.HTTPError) as e:
            http_get("http://127.0.0.1:%d/nope" % port)
        self.assertEqual(e.exception.code, 404)

    def test_metrics_off_by_default_bad_address_refused_redis_down_still_answers(self):
        c = self.c
        bad = subprocess.run([c.exe("fetchpool-master"), "--redis", c.redis_srv.url,
                              "--metrics", "nowhere:99999"], capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(bad.returncode, 2, bad)
        self.assertIn("--metrics", bad.stderr)
        port = fp.free_port()
        c.start_master("--metrics", "127.0.0.1:%d" % port)
        fp.wait_port(port, c.master.popen, what="metrics endpoint")
        self.assertIn("fetchpool_redis_up 1", http_get("http://127.0.0.1:%d/metrics" % port))
        c.redis_srv.stop()
        t0 = time.monotonic()
        text = http_get("http://127.0.0.1:%d/metrics" % port, timeout=10)
        self.assertIn("fetchpool_redis_up 0", text)
        self.assertLess(time.monotonic() - t0, 8)
        self.assertTrue(c.master.alive())


if __name__ == "__main__":
    fp.main()
