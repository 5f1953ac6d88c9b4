#!/usr/bin/python3
"""Paired A/B of two versions of the queue scripts inside one redis-server (issue #14 P3, P6).

On a noisy machine two runs of `make bench` minutes apart differ by more than a change to the
scripts does; this compares two versions of common/queue/lua in the same Redis at the same
moments. Each version gets a queue of its own (a and b) and its scripts loaded as the build
loads them (below); blocks of calls alternate between the two (A B, B A, ...) and
each block's Redis time per call comes from INFO commandstats (evalsha usec) before and after.
  - ack_lease: SCENES scenes enqueued per queue by `scenefarm enqueue`, one scene leased by
    lease.lua, then ack_lease.lua acks the scene held and leases the next, BLOCK calls a block,
    one after another (each call needs the previous reply), the test worker's arguments.
  - enqueue_many: calls of 500 new scenes each, one call a block.
  - heartbeat, reclaim: what every idle worker runs every 5 s (issue #14 P8): an idle worker's
    heartbeat (no scenes held, its hash's TTL and heartbeat_at, no readings) and a reclaim
    that finds nothing expired, BLOCK calls a block.
Prints, per script, the median Redis time per call (per scene for enqueue_many) of A and B and
the median of the paired ratios B/A with its quartiles.

  /usr/bin/python3 bench/scripts_ab.py --a REV_OR_DIR --b REV_OR_DIR [--build DIR]
      [--scenes 20000] [--block 250] [--enqueue-calls 200] [--idle-blocks 40]
      [--whole-lib a|b|both]

A version is a directory holding the scripts, or a git revision of this repository (its
common/queue/lua). Either is made into the scripts Redis runs by this tree's
cmake/embed_lua.cmake, as the build makes them (what each script uses of lib.lua in front of
it); --whole-lib puts all of lib.lua in front of that side's scripts instead, as builds before
2026-12-02 15:00 did. --build is where `scenefarm` comes from (the ack_lease setup).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402

SCRIPTS = ["lease", "ack_lease", "enqueue_many", "heartbeat", "reclaim"]
DOC = ('{"id":"%s","run":"bench","workflow":{"1":{"class_type":"EmptyImage","inputs":{}}},'
       '"priority":0}')


def load_version(spec, whole_lib, tmp):
    """The scripts of spec (a directory or a git revision) as Redis runs them, {name: text}."""
    src = os.path.join(tmp, "lua")
    os.makedirs(src)
    for n in ["lib"] + SCRIPTS:
        if os.path.isdir(spec):
            text = open(os.path.join(spec, n + ".lua")).read()
        else:
            text = subprocess.run(["git", "-C", ROOT, "show", f"{spec}:common/queue/lua/{n}.lua"],
                                  check=True, capture_output=True, text=True).stdout
        with open(os.path.join(src, n + ".lua"), "w") as f:
            f.write(text)
    return bench.built_scripts(src, SCRIPTS, os.path.join(tmp, "out"), whole_lib)


def evalsha_usec(r):
    c = r.info("commandstats").get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    return c["usec"], c["calls"]


def summary(name, unit, a, b):
    ratios = [y / x for x, y in zip(a, b) if x > 0]
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    print(f"{name}: A {statistics.median(a):.2f} us/{unit}, "
          f"B {statistics.median(b):.2f} us/{unit}; paired B/A median "
          f"{statistics.median(ratios):.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}, "
          f"{len(ratios)} pairs of blocks)", flush=True)
    return statistics.median(ratios)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--scenes", type=int, default=20000)
    ap.add_argument("--block", type=int, default=250)
    ap.add_argument("--enqueue-calls", type=int, default=200)
    ap.add_argument("--idle-blocks", type=int, default=40)
    ap.add_argument("--whole-lib", choices=["a", "b", "both"])
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    versions = {q: load_version(getattr(a, q), a.whole_lib in (q, "both"),
                                os.path.join(tmp.name, q)) for q in ("a", "b")}
    # bench.py's setup: its private redis-server on loopback, its work directory, its CLI.
    b = bench.Bench(argparse.Namespace(build=a.build, smoke=True, exporter_bin=None))
    cli, url, work = b.cli, b.url, b.work
    try:
        r = redis.Redis(port=b.port, decode_responses=True)
        held, sha = {}, {}
        for q, v in versions.items():
            path = os.path.join(work, q + ".jsonl")
            with open(path, "w") as f:
                for i in range(a.scenes + 1):
                    f.write(DOC % f"{q}{i}" + "\n")
            subprocess.run([cli, "--redis-url", url, "--queue", q, "enqueue", path], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # Leases of an hour: a slow run must not see them expire (the reclaim blocks below
            # find nothing expired).
            got = r.eval(v["lease"], 0, f"sf:{{{q}}}:", "0", "w" + q, "3600000")
            held[q] = (got[0], got[1])
            sha[q] = {s: r.script_load(v[s]) for s in SCRIPTS}

        per = {"a": [], "b": []}
        for block in range(a.scenes // a.block):
            for q in ("a", "b") if block % 2 == 0 else ("b", "a"):
                cur, att = held[q]
                u0, c0 = evalsha_usec(r)
                for _ in range(a.block):
                    res = r.evalsha(sha[q]["ack_lease"], 0, f"sf:{{{q}}}:", "0", "w" + q, cur,
                                    att, '{"rendered_by":"fake"}', "604800", "3600000", "", q)
                    if len(res) < 6:
                        raise RuntimeError(f"ack_lease of queue {q} leased nothing: {res}")
                    cur, att = res[4], res[5]
                u1, c1 = evalsha_usec(r)
                held[q] = (cur, att)
                per[q].append((u1 - u0) / max(1, c1 - c0))
        summary("ack_lease", "call", per["a"], per["b"])

        per = {"a": [], "b": []}
        for k in range(a.enqueue_calls):
            for q in ("a", "b") if k % 2 == 0 else ("b", "a"):
                args = []
                for i in range(500):
                    args += [f"e{k}-{i}", "bench", "0", "1", DOC % f"e{k}-{i}"]
                u0, _ = evalsha_usec(r)
                res = r.evalsha(sha[q]["enqueue_many"], 0, f"sf:{{{q}}}:", "0", *args)
                u1, _ = evalsha_usec(r)
                if sum(res) != 500:
                    raise RuntimeError(f"enqueue_many of queue {q} created {sum(res)} of 500")
                per[q].append((u1 - u0) / 500)
        summary("enqueue_many", "scene", per["a"], per["b"])

        # An idle worker's two scripts every 5 s: each queue's own idle worker.
        idle = {"heartbeat": lambda q: ["idle-" + q, "30000", "15", "1764680000000", ""],
                "reclaim": lambda q: ["100", "3", ""]}
        for name, args in idle.items():
            per = {"a": [], "b": []}
            for block in range(a.idle_blocks):
                for q in ("a", "b") if block % 2 == 0 else ("b", "a"):
                    u0, c0 = evalsha_usec(r)
                    pipe = r.pipeline(transaction=False)
                    for _ in range(a.block):
                        pipe.evalsha(sha[q][name], 0, f"sf:{{{q}}}:", "0", *args(q))
                    pipe.execute()
                    u1, c1 = evalsha_usec(r)
                    per[q].append((u1 - u0) / max(1, c1 - c0))
            summary(name, "call", per["a"], per["b"])
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
