#!/usr/bin/python3
"""`make bench` (issue #14): every benchmark in one run, with its peers beside it.

One private redis-server on loopback serves every benchmark and every peer (FLUSHALL between
them). Prints one table and writes a JSON file (bench/results.json by default): the machine
(cores, memory, redis-server version, load, date), and per benchmark each figure with its unit,
the peer's figure beside it where there is one, and the target of issue #14.

  /usr/bin/python3 bench/bench.py [--build DIR] [--out FILE] [--smoke] [--only PART,...]

PARTs: drain enqueue pickup exporter worker_rss redis_cpu. --smoke: tiny sizes, seconds each
(ctest's bench.Smoke.*: checks that each part ran and printed well-formed figures, never a
timing). Peers (Debian packages): python3-rq 1.13, prometheus-redis-exporter,
python3-prometheus-client (bench/peers/). Run with /usr/bin/python3 (Debian's modules).
"""
import argparse
import datetime
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
PARTS = ["drain", "enqueue", "pickup", "exporter", "worker_rss", "redis_cpu"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    i = max(1, math.ceil(p / 100 * len(s)))
    return s[min(i, len(s)) - 1]


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon (heap, stacks), RssFile (mapped files: libraries) in MiB, and
    Threads of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
            elif k == "Threads":
                out[k] = int(v)
    return out


def smaps_breakdown(pid):
    """Resident MiB of a process by what holds it: its heap, thread stacks and other anonymous
    memory, and each file mapped (libraries), from /proc/PID/smaps."""
    by = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = parts[5] if len(parts) > 5 else "[anon]"
                if name.startswith("/"):
                    name = os.path.basename(name)
            elif parts and parts[0] == "Rss:":
                by[name] = by.get(name, 0) + int(parts[1]) / 1024
    return dict(sorted(by.items(), key=lambda kv: -kv[1]))


class Procs:
    """Processes this run started; each stopped by its own pid."""

    def __init__(self):
        self.live = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=30):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=10)


def built_scripts(lua_dir, names, out_dir, whole_lib=False):
    """The queue scripts of lua_dir as this tree's build makes them (cmake/embed_lua.cmake: what
    each uses of lib.lua in front of it; whole_lib: all of lib.lua), as {name: text}."""
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["cmake", f"-DLUA_DIR={lua_dir}", f"-DLUA_OUT_DIR={out_dir}",
                    "-DSCRIPTS=" + ";".join(names), f"-DLUA_WHOLE_LIB={'ON' if whole_lib else 'OFF'}",
                    "-P", os.path.join(ROOT, "cmake", "embed_lua.cmake")], check=True)
    out = {}
    for n in names:
        with open(os.path.join(out_dir, n + ".lua")) as f:
            out[n] = f.read()
    return out


def wait_for(what, cond, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Bench:
    def __init__(self, args):
        self.a = args
        self.smoke = args.smoke
        b = os.path.abspath(args.build)
        self.cli = os.path.join(b, "cli", "scenefarm")
        self.test_worker = os.path.join(b, "tests", "scenefarm-test-worker")
        self.worker = os.path.join(b, "worker", "scenefarm-worker")
        self.exporter_bin = args.exporter_bin or os.path.join(b, "exporter", "scenefarm-exporter")
        self.comfy = os.path.join(b, "tests", "comfyui_server", "scenefarm-comfyui-test-server")
        self.idle_farm = os.path.join(b, "tests", "scenefarm-idle-farm")
        self.work = tempfile.mkdtemp(prefix="sf-bench-")
        self.procs = Procs()
        self.rows = []
        self.details = {}
        self.polls = 0  # this script's own HGETs, taken out of the drain's command counts
        self.port = free_port()
        self.redis_proc = self.procs.start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.work],
            stdout=open(os.path.join(self.work, "redis.log"), "w"), stderr=subprocess.STDOUT)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.r = redis.Redis(port=self.port)
        wait_for("redis-server", self._ping, 20)
        worker_help = subprocess.run([self.test_worker, "--help"], capture_output=True,
                                     text=True).stdout
        # The loop's idle poll period where the worker still has one (before issue #14 P7).
        self.has_idle_poll = "--idle-poll-seconds" in worker_help

    def _ping(self):
        try:
            return self.r.ping()
        except redis.ConnectionError:
            return False

    def close(self):
        self.procs.stop_all()
        shutil.rmtree(self.work, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------
    def row(self, part, case, value, unit, peers=(), target="", extra=None):
        r = {"bench": part, "case": case, "scenefarm": {"value": value, "unit": unit},
             "peers": [dict(name=n, value=v, unit=u) for n, v, u in peers], "target": target}
        if extra:
            r.update(extra)
        self.rows.append(r)
        return r

    def flush(self):
        self.r.flushall()
        self.r.config_resetstat()

    def scenes_file(self, n, prefix, queue_count=1):
        path = os.path.join(self.work, f"{prefix}.jsonl")
        with open(path, "w") as f:
            for i in range(n):
                f.write('{"id":"%s%d","run":"bench","workflow":{"1":{"class_type":"EmptyImage",'
                        '"inputs":{}}}}\n' % (prefix, i))
        return path

    def enqueue_file(self, path, queue="scenes"):
        subprocess.run([self.cli, "--redis-url", self.url, "--queue", queue, "enqueue", path],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def succeeded(self, queue="scenes"):
        self.polls += 1
        return int(self.r.hget("sf:{%s}:stats" % queue, "succeeded") or 0)

    def cmdstats(self):
        out = {}
        for k, v in self.r.info("commandstats").items():
            out[k[len("cmdstat_"):]] = (v["calls"], v["usec"])
        return out

    def start_test_worker(self, wid, extra=(), log=None):
        argv = [self.test_worker, "--redis-url", self.url, "--worker-id", wid, *extra]
        return self.procs.start(argv, stdout=subprocess.DEVNULL,
                                stderr=open(log or os.devnull, "w"))

    def rq(self, *argv, timeout=900):
        out = subprocess.run([PY, os.path.join(HERE, "peers", "rq_bench.py"), *argv, "--url",
                              self.url], check=True, capture_output=True, text=True,
                             timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])

    # -- drain: scenes/s through the worker loop with the instant renderer -------------------
    def drain(self):
        n1, n4 = (200, 400) if self.smoke else (20000, 40000)
        rq_simple, rq_fork = (50, 10) if self.smoke else (3000, 300)
        figures = {}
        for workers, n in ((1, n1), (4, n4)):
            self.flush()
            self.enqueue_file(self.scenes_file(n, f"d{workers}-"))
            self.r.config_resetstat()
            self.polls = 0
            extra = ["--idle-poll-seconds", "0.01"] if self.has_idle_poll else []
            t0 = time.monotonic()
            ws = [self.start_test_worker(f"drain-{workers}-{i}", extra,
                                         os.path.join(self.work, f"drain-{workers}-{i}.log"))
                  for i in range(workers)]
            wait_for("the drain", lambda: self.succeeded() >= n, 600)
            secs = time.monotonic() - t0
            hwm = max(proc_status(w.pid)["VmHWM"] for w in ws)
            for w in ws:
                self.procs.stop(w)
            stats = self.cmdstats()
            calls = sum(c for k, (c, _) in stats.items() if k not in ("info", "config|resetstat"))
            calls -= self.polls
            rts, stopped = 0, 0
            for i in range(workers):
                with open(os.path.join(self.work, f"drain-{workers}-{i}.log")) as f:
                    for line in f:
                        try:
                            e = json.loads(line)
                        except ValueError:
                            continue
                        if e.get("event") == "worker_stopped" and "redis_round_trips" in e:
                            rts += e["redis_round_trips"]
                            stopped += 1
            figures[workers] = {"scenes": n, "seconds": secs, "scenes_per_s": n / secs,
                                "round_trips_per_scene": rts / n if stopped == workers else None,
                                "redis_commands_per_scene": calls / n,
                                "evalsha_per_scene": stats.get("evalsha", (0, 0))[0] / n,
                                "peak_rss_mib": hwm}
        peers = {}
        for kind, jobs in (("simple", rq_simple), ("fork", rq_fork)):
            self.flush()
            peers[kind] = self.rq("drain", "--kind", kind, "--jobs", str(jobs))
        self.details["drain"] = {"scenefarm": figures, "rq": peers}
        s1 = figures[1]["scenes_per_s"]
        ps = [("RQ 1.13 SimpleWorker", peers["simple"]["jobs_per_s"], "jobs/s"),
              ("RQ 1.13 Worker (fork)", peers["fork"]["jobs_per_s"], "jobs/s")]
        self.row("drain", "1 worker, instant renderer", s1, "scenes/s", ps,
                 ">= 10,000/s and >= 20x RQ SimpleWorker (P3)",
                 {"ratio_to_peer": s1 / peers["simple"]["jobs_per_s"]})
        self.row("drain", "4 workers, instant renderer", figures[4]["scenes_per_s"], "scenes/s",
                 target=">= 25,000/s (P3)")
        if figures[1]["round_trips_per_scene"] is not None:  # logged by the worker at its stop
            self.row("drain", "worker round trips per scene (1 worker)",
                     figures[1]["round_trips_per_scene"], "round trips", target="1 (P3)")
        self.row("drain", "Redis commands per scene (1 worker, scripts' inner calls included)",
                 figures[1]["redis_commands_per_scene"], "commands")

    # -- enqueue: the CLI vs RQ enqueue_many, and Redis memory per pending scene ------------
    def enqueue(self):
        sizes = [2000] if self.smoke else [200000, 1000000]
        for n in sizes:
            path = self.scenes_file(n, "e")
            self.flush()
            before = self.r.info("memory")["used_memory"]
            t0 = time.monotonic()
            self.enqueue_file(path)
            secs = time.monotonic() - t0
            pending = self.r.zcard("sf:{scenes}:pending")
            per = (self.r.info("memory")["used_memory"] - before) / max(pending, 1)
            os.unlink(path)
            peers, peer_mem = [], []
            if n == sizes[0]:
                self.flush()
                rq = self.rq("enqueue", "--jobs", str(n), "--batch", "1000")
                self.details.setdefault("enqueue", {})["rq"] = rq
                peers = [("RQ 1.13 enqueue_many, 1000 per pipeline", rq["jobs_per_s"], "jobs/s")]
                peer_mem = [("RQ 1.13, pending job", rq["bytes_per_pending"], "bytes")]
            target = "1,000,000 in <= 10 s (P6)" if n >= 1000000 else ""
            self.row("enqueue", f"enqueue {n:,} through the CLI", pending / secs, "scenes/s",
                     peers, target, {"seconds": secs, "scenes": pending})
            self.row("enqueue", f"Redis memory per pending scene ({n:,} pending)", per, "bytes",
                     peer_mem, "not above 1,216 bytes (P6)")

    # -- pickup: enqueue -> leased on an idle farm ---------------------------------------------
    def pickup(self):
        idle = 3 if self.smoke else 60
        # 100 a way: the p99 of 30 samples was their maximum, one stall of the scheduler.
        samples = 5 if self.smoke else 100
        gap = (0.1, 0.3) if self.smoke else (0.3, 1.5)
        workers = 2
        self.flush()
        ws = [self.start_test_worker(f"idle-{i}") for i in range(workers)]
        wait_for("the workers' heartbeats", lambda: self.r.zcard("sf:workers") >= workers, 30)
        time.sleep(min(2, idle))
        c0, t0 = self.cmdstats(), time.monotonic()
        time.sleep(idle)
        c1, secs = self.cmdstats(), time.monotonic() - t0
        skip = ("info", "config|resetstat")
        idle_calls = sum(v[0] - c0.get(k, (0, 0))[0] for k, v in c1.items() if k not in skip)
        idle_stats = {k: round((v[0] - c0.get(k, (0, 0))[0]) / secs / workers, 3)
                      for k, v in c1.items() if k not in skip and v[0] > c0.get(k, (0, 0))[0]}
        per_worker = idle_calls / secs / workers
        # Two ways to enqueue, alternating: one client connected throughout (this process, with
        # enqueue_many.lua as the build makes it, one scene a call as the CLI's and the API's
        # Queue::Enqueue send them: RQ's peer below enqueues from one client too), and a
        # `scenefarm enqueue` process a scene (whose exit runs on this 2-core machine while the
        # worker wakes). Both are timed by the same events, in Redis.
        enqueue = self.r.script_load(built_scripts(os.path.join(ROOT, "common", "queue", "lua"),
                                                   ["enqueue_many"],
                                                   os.path.join(self.work, "lua"))["enqueue_many"])
        doc = '{"id":"%s","run":"pickup","workflow":{"1":{"class_type":"EmptyImage","inputs":{}}}}'
        ids = {"client": [], "cli": []}
        for i in range(samples):
            for way in ("client", "cli") if i % 2 == 0 else ("cli", "client"):
                time.sleep(random.uniform(*gap))
                sid = f"p{way}{i}"
                if way == "client":
                    if self.r.evalsha(enqueue, 0, "sf:{scenes}:", "0", sid, "pickup", "0", "1",
                                      doc % sid) != [1]:
                        raise RuntimeError(f"pickup: enqueue_many.lua did not enqueue {sid}")
                else:
                    subprocess.run([self.cli, "--redis-url", self.url, "enqueue", "-"],
                                   check=True, input=doc % sid + "\n", text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                ids[way].append(sid)
        wait_for("the pickup scenes", lambda: self.succeeded() >= 2 * samples, 120)
        for w in ws:
            self.procs.stop(w)
        enq, leased = {}, {}
        for eid, f in self.r.xrange("sf:{scenes}:events", "-", "+"):
            ms = int(eid.split(b"-")[0])
            scene, ev = f.get(b"scene", b"").decode(), f.get(b"event", b"").decode()
            if ev == "enqueued":
                enq.setdefault(scene, ms)
            elif ev == "leased":
                leased.setdefault(scene, ms)
        missing = [s for way in ids.values() for s in way if s not in enq or s not in leased]
        if missing:
            raise RuntimeError(f"pickup: no enqueued/leased event for {missing}")
        lat = {way: [leased[s] - enq[s] for s in got] for way, got in ids.items()}
        # RQ: the forking Worker (what `rq worker` runs), idle as long, then the same samples.
        self.flush()
        rqw = self.procs.start([PY, os.path.join(HERE, "peers", "rq_bench.py"), "worker",
                                "--kind", "fork", "--url", self.url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("the RQ worker", lambda: len(self.r.keys("rq:worker:*")) >= 1, 30)
        c0, t0 = self.cmdstats(), time.monotonic()
        time.sleep(idle)
        c1, secs = self.cmdstats(), time.monotonic() - t0
        rq_idle = sum(v[0] - c0.get(k, (0, 0))[0] for k, v in c1.items() if k not in skip) / secs
        rq = self.rq("pickup", "--jobs", str(samples), "--gap-min", str(gap[0]), "--gap-max",
                     str(gap[1]))
        self.procs.stop(rqw)
        self.details["pickup"] = {"idle_seconds": idle, "samples": samples, "workers": workers,
                                  "scenefarm_ms": lat["client"], "scenefarm_cli_ms": lat["cli"],
                                  "rq_ms": rq["latency_ms"],
                                  "idle_commands_per_worker_per_s": idle_stats}
        for p in (50, 99):
            self.row("pickup", f"idle farm, enqueue -> leased p{p} ({workers} workers idle "
                     f"{idle} s, {samples} scenes from one connected client)",
                     percentile(lat["client"], p), "ms",
                     [("RQ 1.13 Worker, enqueue -> started", percentile(rq["latency_ms"], p),
                       "ms")], "p50 <= 2 ms, p99 <= 5 ms (P7)")
        for p in (50, 99):
            self.row("pickup", f"idle farm, enqueue -> leased p{p}, {samples} scenes each from a "
                     "`scenefarm enqueue` process (between the client's)",
                     percentile(lat["cli"], p), "ms")
        self.row("pickup", "Redis commands per idle worker per second (heartbeats, reclaims and "
                 "scripts' inner calls included)",
                 per_worker, "commands/s", [("RQ 1.13 Worker, idle", rq_idle, "commands/s")],
                 "<= 1 for the wake-up (P7)")

    # -- exporter scrape at 1,000 and 10,000 workers ------------------------------------------
    def populate_farm(self, workers, queues, per_queue, with_readings):
        for q in range(queues):
            path = os.path.join(self.work, f"q{q}.jsonl")
            with open(path, "w") as f:
                for i in range(per_queue):
                    f.write('{"id":"q%d-%d","run":"r%d","workflow":{"1":{"class_type":'
                            '"EmptyImage","inputs":{}}}}\n' % (q, i, i % 5))
            self.enqueue_file(path, f"queue{q}")
        now_ms = int(time.time() * 1000)
        p = self.r.pipeline(transaction=False)
        self.farm_workers = workers
        for w in range(1, workers + 1):
            readings = json.dumps({
                "at": now_ms, "instance": f"http://comfy-{w}:8188",
                "gpus": [{"index": "0", "uuid": f"GPU-{w:08d}", "name": "NVIDIA GeForce RTX 4090",
                          "source": "nvml", "free_bytes": 2.0e10, "total_bytes": 2.4e10,
                          "temperature_celsius": 41, "utilization_ratio": 0.97,
                          "power_watts": 300}],
                "disks": [{"path": "/srv/artifacts", "role": "artifacts", "free_bytes": 5e11,
                           "total_bytes": 1e12},
                          {"path": "/srv/comfyui/output", "role": "comfyui_output",
                           "free_bytes": 5e11, "total_bytes": 1e12}]})
            p.zadd("sf:workers", {f"worker-{w}": now_ms})
            fields = {"host": "bench", "pid": w, "busy": w % 2, "scene": f"q0-{w % 100}",
                      "heartbeat_at": now_ms}
            if with_readings:
                fields["readings"] = readings
            p.hset(f"sf:worker:worker-{w}", mapping=fields)
            if w % 1000 == 0:
                p.execute()
        for q in range(queues):
            pre = "sf:{queue%d}:" % q
            p.hset(pre + "stats", mapping={
                "succeeded": 5000, "failed": 120, "retried": 100, "dead_lettered": 20,
                "completion_done_marker": 4700, "completion_forced_copy": 300,
                "exit_success": 5000, "frames": 120000})
            for h in ("duration", "end_to_end"):
                p.hset(pre + "h:" + h, mapping={"30": 1000, "45": 2500, "60": 1200, "120": 300,
                                                "+Inf": 0, "sum": 240000, "count": 5000})
            p.hset(pre + "h:queue_wait", mapping={"0.1": 4000, "1": 900, "10": 100,
                                                  "sum": 1200, "count": 5000})
            p.hset(pre + "h:done_marker_wait", mapping={"0.1": 4000, "1": 600, "10": 100,
                                                        "sum": 700, "count": 4700})
            p.hset(pre + "h:frames", mapping={"22": 100, "24": 4900, "sum": 119900,
                                              "count": 5000})
        p.execute()

    def heartbeats(self, stop):
        """The simulated workers' heartbeats, every 5 s (the worker's default period) while the
        exporters are scraped, so that every worker stays live (within the 30 s window)."""
        r = redis.Redis(port=self.port)
        while not stop.is_set():
            now_ms = int(time.time() * 1000)
            p = r.pipeline(transaction=False)
            for w in range(1, self.farm_workers + 1):
                p.zadd("sf:workers", {f"worker-{w}": now_ms})
                p.hset(f"sf:worker:worker-{w}", "heartbeat_at", now_ms)
                if w % 1000 == 0:
                    p.execute()
            p.execute()
            stop.wait(5)

    def scrape(self, port, n, path="/metrics"):
        times, body = [], b""
        for _ in range(n):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as resp:
                body = resp.read()
            times.append((time.perf_counter() - t0) * 1000)
        series = sum(1 for line in body.decode().splitlines() if line and line[0] != "#")
        return times, series

    def exporter(self):
        # The workers' state as issue #6's bench wrote it (heartbeats, busy marks, counters and
        # histograms), and at 10,000 workers also with each worker's host readings (one GPU, two
        # disks), as every scenefarm-worker publishes them: per-worker series.
        cases = ([(50, 2, 5, True)] if self.smoke else
                 [(1000, 10, 100, False), (10000, 100, 100, False), (10000, 100, 100, True)])
        for workers, queues, per_queue, with_readings in cases:
            self.flush()
            self.populate_farm(workers, queues, per_queue, with_readings)
            keys = self.r.dbsize()
            stop = threading.Event()
            beats = threading.Thread(target=self.heartbeats, args=(stop,))
            beats.start()
            big = workers >= 10000
            n_sf = 5 if self.smoke else (20 if with_readings else 100 if big else 200)
            n_py = 3 if self.smoke else (10 if big else 50)
            n_re = 2 if self.smoke else (4 if big else 20)
            sf_port, re_port, py_port = free_port(), free_port(), free_port()
            sf = self.procs.start([self.exporter_bin, "--listen", f"127.0.0.1:{sf_port}",
                                   "--redis-url", self.url, "--comfyui-url", "", "--gpu-source",
                                   "none", "--log-level", "warn"],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(self.work, "sf-exporter.log"), "w"))
            re_ = self.procs.start(["prometheus-redis-exporter", "-redis.addr", self.url,
                                    "-web.listen-address", f"127.0.0.1:{re_port}",
                                    "-check-keys", "sf:*"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            py = self.procs.start([PY, os.path.join(HERE, "peers", "prom_exporter.py"),
                                   "--redis-url", self.url, "--port", str(py_port)],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(self.work, "py-exporter.log"), "w"))
            res = {}
            for name, port, proc, n in (("scenefarm-exporter", sf_port, sf, n_sf),
                                        ("prometheus-client peer", py_port, py, n_py),
                                        ("prometheus-redis-exporter -check-keys", re_port, re_,
                                         n_re)):
                wait_for(name, lambda: self._up(port), 60, 0.1)
                times, series = self.scrape(port, n)
                st = proc_status(proc.pid)
                res[name] = {"scrapes": n, "p50_ms": percentile(times, 50),
                             "p99_ms": percentile(times, 99), "series": series,
                             "rss_mib": st["VmRSS"], "peak_rss_mib": st["VmHWM"]}
            live = self.r.zcount("sf:workers", int(time.time() * 1000) - 30000, "+inf")
            stop.set()
            beats.join()
            for p in (sf, re_, py):
                self.procs.stop(p)
            if live != workers:
                raise RuntimeError(f"exporter: {live} of {workers} workers live after the scrapes")
            label = f"{workers}w{queues}q" + ("+readings" if with_readings else "")
            self.details.setdefault("exporter", {})[label] = dict(res, keys=keys)
            sfr = res["scenefarm-exporter"]
            others = [n for n in res if n != "scenefarm-exporter"]
            case = (f"{workers:,} workers + {queues} queues"
                    f"{' with host readings' if with_readings else ''} ({keys:,} keys, "
                    f"{sfr['series']:,} series)")
            big = big and not with_readings  # the targets' case: the workers' state
            tgt = "p99 <= 50 ms at 10,000 workers (P8)" if big else ""
            for p in ("p50", "p99"):
                self.row("exporter", f"scrape {p}, {case}", sfr[f"{p}_ms"], "ms",
                         [(n, res[n][f"{p}_ms"], "ms") for n in others], tgt if p == "p99" else "")
            self.row("exporter", f"peak RSS, {case}", sfr["peak_rss_mib"], "MiB",
                     [(n, res[n]["peak_rss_mib"], "MiB") for n in others],
                     "<= 15 MiB at 10,000 workers (P5)" if big else "")

    def _up(self, port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                r.read()
            return True
        except OSError:
            return False

    # -- worker peak RSS over a drain -----------------------------------------------------------
    def worker_rss(self):
        n = 100 if self.smoke else 2000
        out = {}
        # scenefarm-test-worker: the loop with the instant renderer.
        self.flush()
        self.enqueue_file(self.scenes_file(n, "rss"))
        w = self.start_test_worker("rss-test")
        wait_for("the drain", lambda: self.succeeded() >= n, 300)
        out["scenefarm-test-worker"] = dict(proc_status(w.pid), top=smaps_breakdown(w.pid))
        self.procs.stop(w)
        # scenefarm-worker driving the ComfyUI test server (real HTTP, websocket, frames).
        m = 5 if self.smoke else 40
        self.flush()
        comfy_dir = os.path.join(self.work, "comfy")
        os.makedirs(comfy_dir, exist_ok=True)
        port_file = os.path.join(comfy_dir, "port")
        comfy = self.procs.start([self.comfy, "--port", "0", "--port-file", port_file,
                                  "--base-dir", comfy_dir], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_for("the ComfyUI test server", lambda: os.path.exists(port_file) and
                 os.path.getsize(port_file) > 0, 30)
        with open(port_file) as f:
            comfy_url = f"http://127.0.0.1:{f.read().strip()}"
        path = os.path.join(self.work, "render.jsonl")
        with open(path, "w") as f:
            for i in range(m):
                f.write('{"id":"r%d","run":"rss","workflow":{"1":{"class_type":'
                        '"ScenefarmTestSource","inputs":{"frames":2,"width":64,"height":64,'
                        '"render_ms_per_frame":5,"seed":%d}},"2":{"class_type":"SaveImage",'
                        '"inputs":{"images":["1",0],"filename_prefix":"x"}}}}\n' % (i, i))
        self.enqueue_file(path)
        w = self.procs.start([self.worker, "--redis-url", self.url, "--comfyui-url", comfy_url,
                              "--comfyui-output-dir", os.path.join(comfy_dir, "output"),
                              "--artifacts-dir", os.path.join(self.work, "artifacts"),
                              "--worker-id", "rss-worker", "--stability-window-seconds", "0.2"],
                             stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.work, "rss-worker.log"), "w"))
        wait_for("the renders", lambda: self.succeeded() >= m, 300, 0.1)
        out["scenefarm-worker"] = dict(proc_status(w.pid), top=smaps_breakdown(w.pid))
        self.procs.stop(w)
        self.procs.stop(comfy)
        for k in out:
            out[k]["top"] = {name: round(mib, 2) for name, mib in list(out[k]["top"].items())[:8]}
        self.details["worker_rss"] = out
        self.row("worker_rss", f"scenefarm-test-worker peak RSS over a drain of {n:,}",
                 out["scenefarm-test-worker"]["VmHWM"], "MiB", target="<= 10 MB (P5)",
                 extra={"threads": out["scenefarm-test-worker"]["Threads"]})
        self.row("worker_rss", f"scenefarm-worker peak RSS over {m} renders (ComfyUI test server)",
                 out["scenefarm-worker"]["VmHWM"], "MiB", target="<= 10 MB (P5)",
                 extra={"threads": out["scenefarm-worker"]["Threads"]})

    # -- Redis CPU of 10,000 idle workers ---------------------------------------------------------
    def redis_cpu(self):
        workers = 200 if self.smoke else 10000
        warm, secs = ("1", "2") if self.smoke else ("6", "20")
        modes = [("heartbeats + reclaims", []),
                 ("heartbeats + reclaims, every worker its own each period (before the turns)",
                  ["--reclaim-every-worker"]),
                 ("+ idle lease poll every 2 s (the loop before P7)", ["--idle-lease-seconds",
                                                                      "2"]),
                 ("+ BLPOP sf:{Q}:wake, 1 s timeout (P7's wake-up)", ["--wake-timeout-seconds",
                                                                      "1"])]
        out = {}
        for name, extra in modes:
            self.flush()
            res = subprocess.run([self.idle_farm, "--redis-url", self.url, "--workers",
                                  str(workers), "--warmup-seconds", warm, "--seconds", secs,
                                  *extra], capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                raise RuntimeError(f"scenefarm-idle-farm failed ({res.returncode}): "
                                   f"{res.stderr[-2000:]}")
            out[name] = json.loads(res.stdout.strip().splitlines()[-1])
            self.row("redis_cpu", f"{workers:,} idle workers, {name}",
                     out[name]["redis_cpu_s_per_s"], "Redis CPU s/s", target="stated (P8)",
                     extra={"commands_per_s": out[name]["commands_per_s"],
                            "wake_calls_per_s": out[name]["wake_calls_per_s"]})
        self.details["redis_cpu"] = out


def machine(r):
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1048576
    ver = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "redis_server": re.search(r"v=(\S+)", ver).group(1),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "load_average_start": os.getloadavg()[0], "commit": commit}


def fmt(v, unit):
    if isinstance(v, float) and (unit.endswith("/s") or unit == "bytes") and v >= 100:
        return f"{v:,.0f} {unit}"
    if isinstance(v, float):
        return f"{v:,.3g} {unit}" if v < 10 else f"{v:,.1f} {unit}"
    return f"{v:,} {unit}"


def table(rows):
    lines = ["| benchmark | case | scenefarm | peer(s) in the same run | target |",
             "|---|---|---|---|---|"]
    for r in rows:
        peers = "; ".join(f"{p['name']}: {fmt(p['value'], p['unit'])}" for p in r["peers"])
        s = r["scenefarm"]
        lines.append(f"| {r['bench']} | {r['case']} | {fmt(s['value'], s['unit'])} | {peers} | "
                     f"{r['target']} |")
    return "\n".join(lines)


def check(results, parts):
    """Well-formed: every part ran and every figure is a finite number with a unit."""
    problems = []
    for k in ("cores", "memory_gib", "redis_server", "date"):
        if k not in results["machine"]:
            problems.append(f"machine.{k} missing")
    for p in parts:
        rows = [r for r in results["rows"] if r["bench"] == p]
        if not rows:
            problems.append(f"{p}: no figures")
        for r in rows:
            for fig in [r["scenefarm"], *r["peers"]]:
                v = fig.get("value")
                if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    problems.append(f"{p}: {r['case']}: bad value {v!r}")
                if not fig.get("unit"):
                    problems.append(f"{p}: {r['case']}: no unit")
        if p not in results["details"]:
            problems.append(f"{p}: no details")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", default=",".join(PARTS))
    ap.add_argument("--exporter-bin", help="another scenefarm-exporter (a before/after)")
    a = ap.parse_args()
    parts = [p for p in a.only.split(",") if p]
    for p in parts:
        if p not in PARTS:
            ap.error(f"unknown part {p!r} (one of {', '.join(PARTS)})")
    b = Bench(a)
    results = {"machine": machine(b.r), "smoke": a.smoke, "build": os.path.abspath(a.build),
               "rows": b.rows, "details": b.details, "part_seconds": {}}
    try:
        for p in parts:
            t0 = time.monotonic()
            print(f"bench: {p} ...", file=sys.stderr, flush=True)
            getattr(b, p)()
            results["part_seconds"][p] = round(time.monotonic() - t0, 1)
    finally:
        b.close()
    results["machine"]["load_average_end"] = os.getloadavg()[0]
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    m = results["machine"]
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, redis-server "
          f"{m['redis_server']}, {m['date']}, load average {m['load_average_start']:.1f} -> "
          f"{m['load_average_end']:.1f}{' (smoke run)' if a.smoke else ''}")
    print(table(results["rows"]))
    problems = check(json.loads(open(a.out).read()), parts)
    for pr in problems:
        print(f"bench: malformed result: {pr}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
