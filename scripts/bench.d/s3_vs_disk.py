#!/usr/bin/python3
"""S3 output against disk output, in the same run: one job of N distinct 16 KB images
from a loopback nginx through 2 workers, once into a folder and once into a bucket of
s3rver (the test store of tests/integration/test_s3.py), alternating for --rounds rounds.
Prints files/s of each, their ratio, and the upload's share of the task time: the sum of
upload times the workers log at exit over the job's sum_s (the results' total_ms, which
include the upload with S3 output).

s3rver is a single node.js process writing each object as files: what limits the S3 figure
here is mostly the store, not the worker, and a real store (or a MinIO) answers faster.

Usage (repo root, after the build): /usr/bin/python3 scripts/bench.d/s3_vs_disk.py
    [--n 20000] [--rounds 1] [--concurrency 64] [--bin build/bin]
"""

import argparse
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import fp_harness as fp  # noqa: E402
import test_s3  # noqa: E402


def upload_seconds(worker):
    with open(worker.log_path, encoding="utf-8", errors="replace") as f:
        lines = [ln for ln in f if "object store:" in ln]
    words = lines[-1].split("object store:")[1].split()
    return int(words[0]), int(words[2]), float(words[5])


def one(c, urls, kind, rnd, s3, conc):
    """Runs the job once with disk or S3 output; returns (files/s, sum_s, upload_s)."""
    workers = []
    for i in (1, 2):
        wid = "%s%d-%d" % (kind, rnd, i)
        if kind == "disk":
            w = c.start_worker(wid, "--concurrency", str(conc), "--host-conns", "0",
                               output=c.mkdir("out-%s" % wid))
        else:
            w = test_s3.start_worker(c, wid, "s3://%s/r%d" % (test_s3.BUCKET, rnd),
                                     "--s3-endpoint", s3.url, "--concurrency", str(conc), "--host-conns", "0")
        workers.append(w)
    c.wait_workers_registered(len(c.workers))
    inp = c.write_input(urls, "urls-%s-%d.txt" % (kind, rnd))
    r = c.submit("--wait", "--attempts", "1", inp, timeout=3600)
    s = r.summary
    if r.rc != 0 or int(s.get("ok", 0)) != len(urls):
        raise SystemExit("%s run %d failed: %r\n%s" % (kind, rnd, r, c.logs()))
    up = 0.0
    for w in workers:
        w.stop(timeout=60)
        c.workers.remove(w)
        if kind == "s3":
            up += upload_seconds(w)[2]
    return float(s["files_per_s"]), float(s["sum_s"]), up


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    a = ap.parse_args()
    fp.BIN = os.path.abspath(a.bin)
    os.environ["FP_BIN"] = fp.BIN
    with fp.Cluster("s3bench") as c:
        c.start_redis()
        c.start_master()
        www = c.mkdir("www")
        files = fp.make_jpegs(www, a.n, size=16384)
        ng = c.start_nginx(www)
        s3 = test_s3.S3rver(c)
        urls = [ng.url(name) for name, _ in files]
        res = {"disk": [], "s3": []}
        for rnd in range(a.rounds):
            order = ("disk", "s3") if rnd % 2 == 0 else ("s3", "disk")
            for kind in order:
                res[kind].append(one(c, urls, kind, rnd, s3, a.concurrency))
                fps, sum_s, up = res[kind][-1]
                print("round %d %-4s %8.0f files/s  sum_s %8.1f  upload_s %8.1f" %
                      (rnd + 1, kind, fps, sum_s, up), file=sys.stderr, flush=True)
        med = {k: statistics.median(x[0] for x in v) for k, v in res.items()}
        share = statistics.median(x[2] / x[1] for x in res["s3"])
        print("images: %d x 16 KB, 2 workers, C=%d, rounds: %d (medians)" %
              (a.n, a.concurrency, a.rounds))
        print("disk output: %.0f files/s" % med["disk"])
        print("s3 output:   %.0f files/s (%.2f x disk)" % (med["s3"], med["s3"] / med["disk"]))
        print("upload share of task time (s3): %.1f %%" % (100 * share))


if __name__ == "__main__":
    main()
