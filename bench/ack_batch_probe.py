#!/usr/bin/python3
"""How much of an ack_lease call's Redis cost is the call's and how much the scene's (issue #14 P3).

A probe, not a product path: it runs ack_lease.lua's body K times inside one script (K scenes
acked and K leased a call, every record and every command written as K separate calls would,
nothing aggregated: lib.lua's once-a-call wake check is reset before each scene) and reports
Redis's CPU a scene (INFO used_cpu_sys + used_cpu_user, its network I/O included) and EVALSHA
time a scene, beside ack_lease.lua one scene a call (both made from this tree's
common/queue/lua as the build makes them). What the K > 1 rows save is what a call costs apart
from its scene: the script's entry, the lib.lua prelude, the TIME call, the round trip's
reading and writing. One client (this script) holds K leased scenes and replaces them as each
call acks them, as one worker with K scenes in its pipeline would; each K gets a fresh queue
per round (SCENES + 2 x the largest K scenes enqueued), the Ks alternate order between rounds.
Fails when a call leases fewer scenes than it acked or the queue's succeeded count is not the
number of scenes acked (a replayed or lost ack).

  /usr/bin/python3 bench/ack_batch_probe.py [--build build-release] [--scenes 8000]
      [--ks 2,4,8,16] [--rounds 3]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench  # noqa: E402

DOC = ('{"id":"%s","run":"bench","workflow":{"1":{"class_type":"EmptyImage","inputs":{}}},'
       '"priority":0}')
RESULT = '{"rendered_by":"fake"}'  # the test worker's result
GROUP = 8  # ack_lease.lua's ARGV[3..10] for one queue: worker .. queue


def scripts(tmp):
    """lease.lua, ack_lease.lua and ack_lease_k.lua (ack_lease's body K times) as built."""
    lua = os.path.join(ROOT, "common", "queue", "lua")
    out = bench.built_scripts(lua, ["lease", "ack_lease"], os.path.join(tmp, "out"))
    src = os.path.join(tmp, "lua")
    os.makedirs(src)
    shutil.copy(os.path.join(lua, "lib.lua"), src)
    with open(os.path.join(lua, "ack_lease.lua")) as f:
        body = f.read()
    with open(os.path.join(src, "ack_lease_k.lua"), "w") as o:
        o.write("local ORIG = {}\nfor i = 1, #ARGV do ORIG[i] = ARGV[i] end\n"
                f"local K, out = (#ORIG - 2) / {GROUP}, {{}}\n"
                "local function one()\n" + body + "\nend\n"
                "for k = 0, K - 1 do\n"
                "  for i = #ARGV, 3, -1 do ARGV[i] = nil end\n"
                f"  for j = 1, {GROUP} do ARGV[2 + j] = ORIG[2 + k * {GROUP} + j] end\n"
                "  P = ORIG[1]\n"
                "  for q in pairs(woken) do woken[q] = nil end\n"
                "  out[#out + 1] = one()\n"
                "end\nreturn out\n")
    out.update(bench.built_scripts(src, ["ack_lease_k"], os.path.join(tmp, "out")))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--scenes", type=int, default=8000)
    ap.add_argument("--ks", default="2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    sc = scripts(tmp.name)
    ks = [1] + [int(x) for x in a.ks.split(",")]
    b = None
    try:
        b = bench.Bench(argparse.Namespace(build=a.build, smoke=True, exporter_bin=None))
        r = redis.Redis(port=b.port, decode_responses=True)

        def cpu():
            i = r.info("cpu")
            return i["used_cpu_sys"] + i["used_cpu_user"]

        path = os.path.join(b.work, "scenes.jsonl")
        with open(path, "w") as f:
            for i in range(a.scenes + 2 * max(ks)):
                f.write(DOC % f"s{i}" + "\n")
        got = {k: [] for k in ks}
        for rnd in range(a.rounds):
            for k in ks if rnd % 2 == 0 else reversed(ks):
                r.flushall()
                sha = {n: r.script_load(t) for n, t in sc.items()}
                subprocess.run([b.cli, "--redis-url", b.url, "--queue", "q", "enqueue", path],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                held = [r.evalsha(sha["lease"], 0, "sf:{q}:", "0", "w", "3600000")[:2]
                        for _ in range(k)]
                r.config_resetstat()
                c0, done = cpu(), 0
                while done < a.scenes:
                    if k == 1:  # the build's ack_lease.lua
                        x = r.evalsha(sha["ack_lease"], 0, "sf:{q}:", "0", "w", *held[0], RESULT,
                                      "604800", "3600000", "", "q")
                        held = [x[4:6]]
                    else:
                        args = []
                        for h in held:
                            args += ["w", *h, RESULT, "604800", "3600000", "", "q"]
                        held = [x[4:6] for x in
                                r.evalsha(sha["ack_lease_k"], 0, "sf:{q}:", "0", *args)]
                    if len(held) != k or any(len(h) != 2 for h in held):
                        raise RuntimeError(f"K={k}: a call leased fewer scenes than it acked")
                    done += k
                c1 = cpu()
                succeeded = int(r.hget("sf:{q}:stats", "succeeded") or 0)
                if succeeded != done:
                    raise RuntimeError(f"K={k}: {done} scenes acked, {succeeded} succeeded")
                ev = r.info("commandstats")["cmdstat_evalsha"]["usec"]
                got[k].append((1e6 * (c1 - c0) / done, ev / done))
        base = statistics.median(c for c, _ in got[1])
        for k in ks:
            c = statistics.median(x for x, _ in got[k])
            e = statistics.median(y for _, y in got[k])
            name = "ack_lease.lua, 1 scene a call" if k == 1 else f"{k} scenes a call"
            print(f"{name}: Redis CPU {c:.1f} us a scene ({c / base:.2f}), EVALSHA {e:.1f} us a "
                  f"scene; rounds: " + ", ".join(f"{x:.1f}" for x, _ in got[k]), flush=True)
    finally:
        if b is not None:
            b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
