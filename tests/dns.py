#!/usr/bin/env python3
"""A fault-injecting authoritative DNS server for fetchpool's test world (python3 stdlib).

The world's resolver (dnsmasq) forwards one zone to it (fault.test): the answers a real
resolver must pass on that a hosts file cannot give: SERVFAIL, answers that come late,
answers that change on every query with TTL 0 (DNS rebinding), several addresses.

    dns.py --host 127.0.0.2 --port 53 --rules rules.json --log queries.log

rules.json maps a lower-case name to a rule:
    {"a": ["127.0.1.1", ...]}          these A records (several: all of them, in order)
    {"first": ["127.0.1.1"], "then": ["127.0.0.1"]}   the first A query gets one answer,
                                       every later one the other (rebinding, counted
                                       exactly however many times a resolver asks)
    {"rcode": 2}                       that response code (2 SERVFAIL, 5 REFUSED), no answer
    "delay_ms": N                      answer after N ms (other queries are not held up)
    "ttl": N                           TTL of the records (default 0)
Names without a rule get NXDOMAIN; AAAA and other types of a known name get no records.
Every query is logged as `<name> <type> <answer>` to --log, for tests to assert on.
It prints READY once it listens.
"""

import argparse
import json
import socket
import struct
import sys
import threading


def parse_question(msg):
    """(id, flags, name, qtype, end offset of the question) or None if malformed."""
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1 or flags & 0x8000:
        return None
    labels, i = [], 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n > 63 or i + n > len(msg):
            return None
        labels.append(msg[i:i + n].decode("ascii", "replace").lower())
        i += n
    if i + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[i:i + 4])
    return qid, flags, ".".join(labels), qtype, i + 4


def response(msg, qid, flags, qend, rcode, addrs, ttl):
    rd = flags & 0x0100
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | rcode, 1, len(addrs), 0, 0)
    out = [hdr, msg[12:qend]]
    for a in addrs:
        # name: pointer to the question (offset 12), type A, class IN
        out.append(struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(a))
    return b"".join(out)


class Server:
    def __init__(self, rules, log_path):
        self.rules = {k.lower().rstrip("."): v for k, v in rules.items()}
        self.counts = {}
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def answer(self, name, qtype):
        """(rcode, addrs, ttl, delay_ms)."""
        rule = self.rules.get(name)
        if rule is None:
            return 3, [], 0, 0
        delay = int(rule.get("delay_ms", 0))
        ttl = int(rule.get("ttl", 0))
        if "rcode" in rule:
            return int(rule["rcode"]), [], ttl, delay
        if qtype != 1:
            return 0, [], ttl, delay
        with self.lock:
            k = self.counts.get(name, 0)
            self.counts[name] = k + 1
        if "first" in rule:
            addrs = rule["first"] if k == 0 else rule["then"]
        else:
            addrs = rule.get("a", [])
        return 0, list(addrs), ttl, delay

    def handle(self, sock, msg, peer):
        q = parse_question(msg)
        if q is None:
            return
        qid, flags, name, qtype, qend = q
        rcode, addrs, ttl, delay = self.answer(name, qtype)
        if self.log:
            with self.lock:
                self.log.write("%s %d %s\n" % (name, qtype, ",".join(addrs) or "rcode=%d" % rcode))
        data = response(msg, qid, flags, qend, rcode, addrs, ttl)
        if delay > 0:
            threading.Timer(delay / 1000.0, self.send, (sock, data, peer)).start()
        else:
            self.send(sock, data, peer)

    @staticmethod
    def send(sock, data, peer):
        try:
            sock.sendto(data, peer)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.2")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--log")
    args = ap.parse_args()
    if not args.host.startswith("127."):
        sys.exit("dns.py: loopback addresses only")
    with open(args.rules) as f:
        srv = Server(json.load(f), args.log)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    print("READY", flush=True)
    while True:
        msg, peer = sock.recvfrom(4096)
        srv.handle(sock, msg, peer)


if __name__ == "__main__":
    main()
