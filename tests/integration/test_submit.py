"""Submitting input: comments, blank lines, invalid lines, stdin, CRLF, JSONL, exit codes.

Checks what scripts/submit and the master make of each kind of input line: comments and
blank lines are skipped, anything that is not an http(s) URL becomes an `invalid_input`
result carrying its line number, and the job still completes.
Run alone: python3 tests/integration/test_submit.py --bin build/bin
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402


class SubmitInputTest(unittest.TestCase):
    """What submit and the master do with the lines of an input file."""

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis()
        self.files = fp.make_jpegs(self.c.path("www"), 5)
        self.ng = self.c.start_nginx(self.c.path("www"))
        self.c.start_master()
        self.c.start_worker()

    def test_comments_blank_and_invalid_lines(self):
        u = [self.ng.url(name) for name, _ in self.files]
        text = [
            "# a comment",            # 1
            u[0],                     # 2
            "",                       # 3
            "   ",                    # 4 (whitespace only: blank)
            "not a url",              # 5
            u[1],                     # 6
            "#" + u[2],               # 7 (commented out URL)
            "ftp://127.0.0.1/x.jpg",  # 8 (not http/https)
            u[3],                     # 9
        ]
        src = self.c.write_input(text)
        res = self.c.path("results.tsv")
        s = self.c.submit("--wait", "--results", res, src, timeout=60)
        self.assertEqual(s.rc, 1, "invalid input counts as failed: %r" % s)
        rows = fp.read_tsv(res)
        got = [(x["line"], x["status"]) for x in rows]
        self.assertEqual(got, [("2", "ok"), ("5", "invalid_input"), ("6", "ok"),
                               ("8", "invalid_input"), ("9", "ok")], rows)
        self.assertEqual([x["url"] for x in rows if x["status"] == "ok"], [u[0], u[1], u[3]])
        self.assertEqual(s.summary.get("total"), "5", s)
        self.assertEqual(s.summary.get("ok"), "3", s)
        self.assertEqual(s.summary.get("fail:invalid_input"), "2", s)

    def test_stdin_crlf_and_jsonl(self):
        u = [self.ng.url(name) for name, _ in self.files]
        data = "\r\n".join(["# windows line ends", u[0], "", u[1], "bogus"]) + "\r\n"
        res = self.c.path("results.jsonl")
        s = self.c.submit("--wait", "--format", "jsonl", "--results", res, "-",
                          stdin=data, timeout=60)
        self.assertEqual(s.rc, 1, s)
        rows = fp.read_jsonl(res)
        self.assertEqual([(x["line"], x["status"]) for x in rows],
                         [(2, "ok"), (4, "ok"), (5, "invalid_input")], rows)
        self.assertEqual(rows[0]["url"], u[0])
        self.assertEqual(set(rows[0]), set(fp.TSV_COLUMNS))
        self.assertEqual(rows[1]["sha256"], self.files[1][1])

    def test_all_good_exits_zero_and_no_wait_prints_id(self):
        u = [self.ng.url(name) for name, _ in self.files]
        src = self.c.write_input(u)
        s = self.c.submit(src)
        self.assertEqual(s.rc, 0, s)
        self.assertTrue(re.fullmatch(r"\d+", s.job or ""), s)
        s2 = self.c.submit("--wait", src, timeout=60)
        self.assertEqual(s2.rc, 0, s2)
        self.assertEqual(int(s2.job), int(s.job) + 1)
        self.assertEqual(s2.summary.get("ok"), "5", s2)

    def test_unreachable_redis_exits_two(self):
        src = self.c.write_input([self.ng.url(self.files[0][0])])
        port = self.c.closed_port()
        cp = subprocess.run([sys.executable, fp.SUBMIT, "--redis",
                                "redis://127.0.0.1:%d" % port, "--wait", src],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 2, cp)



if __name__ == "__main__":
    fp.main()
