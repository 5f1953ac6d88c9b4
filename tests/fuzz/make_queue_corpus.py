#!/usr/bin/env python3
"""Writes corpus/queue_replies/: the raw RESP replies of the queue scripts (and the plain
commands the client reads) from a real redis-server, as the client receives them.

Usage: python3 tests/fuzz/make_queue_corpus.py REDIS_PORT
The server must be a private one (scratch data is written under sf:{fuzzcorpus}:). Run it again
when a script's reply changes; the fuzz target (fuzz_queue_replies.cpp) replays each file.
"""
import json
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "..", "..", "common", "queue", "lua")
OUT = os.path.join(HERE, "corpus", "queue_replies")
P = "sf:{fuzzcorpus}:"


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self.buf += self.s.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _reply(self):
        line = self._line()
        raw = line + b"\r\n"
        kind, rest = line[:1], line[1:]
        if kind == b"$" and int(rest) >= 0:
            raw += self._exact(int(rest) + 2)
        elif kind == b"*" and int(rest) > 0:
            for _ in range(int(rest)):
                raw += self._reply()
        return raw

    def call(self, *args):
        self.s.sendall(encode(args))
        return self._reply()


def script(name):
    with open(os.path.join(LUA, "lib.lua")) as lib, open(os.path.join(LUA, name + ".lua")) as body:
        return lib.read() + "\n" + body.read()


def main():
    c = Conn(int(sys.argv[1]))
    os.makedirs(OUT, exist_ok=True)
    n = [0]

    def keep(label, raw):
        n[0] += 1
        with open(os.path.join(OUT, "%02d-%s.resp" % (n[0], label)), "wb") as f:
            f.write(raw)

    def ev(name, *args, label=None):
        raw = c.call("EVAL", script(name), 0, P, 0, *args)
        keep(label or name, raw)
        return raw

    doc = json.dumps({"id": "s1", "run": "r1", "workflow": {"1": {"class_type": "SaveImage",
                      "inputs": {"filename_prefix": "r1/s1"}}}})
    ev("enqueue", "s1", "r1", 0, 1, doc)
    ev("enqueue", "s1", "r1", 0, 1, doc, label="enqueue-exists")
    ev("enqueue_many", "s2", "r1", 5, 2, doc, "s3", "r1", 0, 0, doc, "s4", "r2", 0, 0, doc, "cli:x")
    ev("lease", "w1", 30000)
    ev("lease", "w1", 30000, label="lease-second")
    ev("heartbeat", "w1", 30000, 60, 1700000000000, '{"gpu": []}', "s2", 1, "s1", 1, "gone", 3)
    telemetry = {"telemetry": {"DurationSeconds": 1.5, "HistoryExitReason": "success",
                               "DoneMarkerDetected": True, "FrameCount": 24},
                 "fallback_reasons": ["history"], "expected_frames": 24}
    ev("ack", "w1", "s2", 1, json.dumps(telemetry), 604800)
    ev("ack", "w1", "s2", 1, json.dumps(telemetry), 604800, label="ack-replayed")
    ev("ack", "w1", "s1", 9, "{}", 604800, label="ack-fenced")
    ev("ack_lease", "w1", "s1", 1, json.dumps(telemetry), 604800, 30000, "", "fuzzcorpus", "other",
       label="ack_lease")
    ev("ack_lease", "w1", "s1", 1, json.dumps(telemetry), 604800, 30000, "", "fuzzcorpus", "other",
       label="ack_lease-replayed")
    ev("fail", "w1", "s1", 1, "boom", 0, 100, "failed", "error", "history")
    ev("lease", "w1", 30000, label="lease-third")
    ev("release", "w1", "s3", 1, "draining", 0)
    ev("lease", "w2", 1, label="lease-short")
    ev("reclaim", 10, 10, 604800)
    ev("resume", "w1", 30000)
    ev("cancel", "s4", 604800, "cli:x")
    ev("retry", "s4", "cli:x")
    ev("pause", "1", "cli:x")
    ev("lease", "w1", 30000, label="lease-paused")
    ev("pause", "0", "cli:x", label="pause-resume")
    ev("rerun", "s2", "again")
    ev("purge", 99999999999999, 10, "cli:x")
    ev("expire_gone", "s3", "w1")
    ev("claim_run", "r2", 600000)
    ev("run_assembled", "r2", 1)
    ev("lease", "w1", 30000, "extra", label="lease-bad-args")
    keep("time", c.call("TIME"))
    keep("hgetall-scene", c.call("HGETALL", P + "scene:s2"))
    keep("xrevrange-events", c.call("XREVRANGE", P + "events", "+", "-", "COUNT", 5))
    keep("zrange-withscores", c.call("ZRANGE", P + "pending", 0, -1, "WITHSCORES"))
    keep("noscript", c.call("EVALSHA", "f" * 40, 0))
    keep("wrongtype", c.call("HGET", P + "pending", "x"))
    # Every reply in order (run all calls), then the same behind each letter a..z: a seed
    # for each call alone (fuzz_queue_replies.cpp: a leading letter picks one call).
    replies = sorted(f for f in os.listdir(OUT) if f[:2].isdigit() and f[:2] != "00")
    all_in_order = b"".join(open(os.path.join(OUT, f), "rb").read() for f in replies)
    with open(os.path.join(OUT, "00-all-in-order.resp"), "wb") as f:
        f.write(all_in_order)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        with open(os.path.join(OUT, "call-%s.resp" % letter), "wb") as f:
            f.write(letter.encode() + all_in_order)
    print("wrote %d replies to %s" % (n[0], OUT))


if __name__ == "__main__":
    main()
