#!/usr/bin/python3
"""The python3-prometheus-client peer of scenefarm-exporter (bench/bench.py, issue #14 P8).

Computes the Redis-backed families scenefarm-exporter serves with `--comfyui-url '' --gpu-source
none` (queue, workers, scenes and worker_readings collectors; docs/metrics.md) from the same keys
(docs/queue-protocol.md), with redis-py pipelines as scenefarm's collectors pipeline them, and
serves them with prometheus_client's own HTTP server. A benchmark peer, not a product.
Usage: /usr/bin/python3 prom_exporter.py --redis-url URL --port PORT [--window-seconds 30]
"""
import argparse
import json
import threading
import time

import redis
from prometheus_client import start_http_server
from prometheus_client.core import (REGISTRY, CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)

OUTCOMES = ["succeeded", "failed", "retried", "dead_lettered", "cancelled", "reclaimed",
            "released", "rerun"]
EXIT_REASONS = ["success", "maxWait", "attemptLimit", "postExecution", "unknown"]
FALLBACKS = ["gpu_memory_pressure", "forced_copy", "done_marker_timeout", "done_marker_untrusted",
             "done_marker_node_missing", "gpu_stats_fallback", "gpu_stats_unavailable",
             "cpu_device", "prompt_lost", "earlier_attempt_adopted", "orphaned_done_tmp",
             "frames_short", "workflow_refused", "other"]
DURATION = [1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 140, 180, 240, 300, 600, 1200, 1800, 3600]
WAIT = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]
FRAMES = [0, 1, 5, 10, 16, 21, 22, 23, 24, 30, 48, 60, 96, 120, 240, 480]
HISTOGRAMS = [("duration", "scenefarm_scene_duration_seconds", DURATION),
              ("end_to_end", "scenefarm_scene_end_to_end_seconds", DURATION),
              ("queue_wait", "scenefarm_scene_queue_wait_seconds", WAIT),
              ("done_marker_wait", "scenefarm_scene_done_marker_wait_seconds", WAIT),
              ("frames", "scenefarm_scene_frames", FRAMES)]


def num(h, k):
    try:
        return float(h.get(k, 0))
    except ValueError:
        return 0.0


def fmt(b):
    return str(int(b)) if float(b).is_integer() else repr(float(b))


class FarmCollector:
    def __init__(self, r, window_ms):
        self.r = r
        self.window_ms = window_ms
        self.lock = threading.Lock()

    def collect(self):
        with self.lock:
            yield from self._collect()

    def _collect(self):
        r = self.r
        sec, usec = r.time()
        now_ms = sec * 1000 + usec / 1000
        queues = sorted(q.decode() for q in r.smembers("sf:queues"))
        # queue collector
        p = r.pipeline(transaction=False)
        for q in queues:
            pre = "sf:{%s}:" % q
            for s in ("pending", "delayed", "leased", "dead"):
                p.zcard(pre + s)
            p.zrange(pre + "pending_since", 0, 0, withscores=True)
            p.scard(pre + "runs")
            p.zrange(pre + "leased", 0, -1)
            p.exists(pre + "paused")
        v = p.execute()
        p = r.pipeline(transaction=False)
        for i, q in enumerate(queues):
            for sid in v[i * 8 + 6]:
                p.hget("sf:{%s}:scene:%s" % (q, sid.decode()), "leased_at")
        since = p.execute()
        depth = GaugeMetricFamily("scenefarm_queue_depth", "Scenes in the queue by state.",
                                  labels=["queue", "state"])
        oldest = GaugeMetricFamily("scenefarm_queue_oldest_pending_age_seconds",
                                   "Age of the oldest pending scene (0 when none is pending).",
                                   labels=["queue"])
        runs = GaugeMetricFamily("scenefarm_queue_runs_in_progress",
                                 "Runs with scenes not yet finished.", labels=["queue"])
        held = GaugeMetricFamily("scenefarm_queue_oldest_leased_age_seconds",
                                 "How long the longest-held lease has been held (0 when none).",
                                 labels=["queue"])
        paused = GaugeMetricFamily("scenefarm_queue_paused",
                                   "1 while the queue is paused (nothing is leased).",
                                   labels=["queue"])
        si = 0
        for i, q in enumerate(queues):
            b = v[i * 8:(i + 1) * 8]
            for j, s in enumerate(("pending", "delayed", "leased", "dead")):
                depth.add_metric([q, s], b[j])
            oldest.add_metric([q], max(0.0, (now_ms - b[4][0][1]) / 1000) if b[4] else 0)
            runs.add_metric([q], b[5])
            h = 0.0
            for _ in b[6]:
                at = int(since[si] or 0)
                si += 1
                if at > 0:
                    h = max(h, (now_ms - at) / 1000)
            held.add_metric([q], h)
            paused.add_metric([q], 1 if b[7] else 0)
        yield from (depth, oldest, runs, held, paused)

        # workers collector
        live = r.zrangebyscore("sf:workers", now_ms - self.window_ms, "+inf", withscores=True)
        p = r.pipeline(transaction=False)
        for wid, _ in live:
            p.hmget("sf:worker:" + wid.decode(), "busy", "readings")
        hashes = p.execute()
        n_busy = sum(1 for busy, _ in hashes if busy == b"1")
        yield GaugeMetricFamily("scenefarm_workers_live",
                                "Workers whose heartbeat is within the window.", value=len(live))
        yield GaugeMetricFamily("scenefarm_workers_busy", "Live workers rendering a scene.",
                                value=n_busy)
        yield GaugeMetricFamily("scenefarm_workers_idle", "Live workers waiting for a scene.",
                                value=len(live) - n_busy)

        # worker_readings collector
        g = {n: GaugeMetricFamily(n, h, labels=["instance", "gpu", "uuid", "worker"]) for n, h in [
            ("scenefarm_gpu_memory_total_bytes", "GPU memory in total."),
            ("scenefarm_gpu_memory_free_bytes", "GPU memory free."),
            ("scenefarm_gpu_memory_used_bytes", "GPU memory in use."),
            ("scenefarm_gpu_temperature_celsius", "GPU die temperature."),
            ("scenefarm_gpu_utilization_ratio", "GPU core utilisation, 0 to 1."),
            ("scenefarm_gpu_power_watts", "GPU power draw.")]}
        info = GaugeMetricFamily("scenefarm_gpu_info",
                                 "1 per GPU, with its name, driver and the source read.",
                                 labels=["instance", "gpu", "uuid", "worker", "name", "driver",
                                         "source"])
        dl = ["worker", "path"]
        dfree = GaugeMetricFamily("scenefarm_worker_disk_free_bytes", "Bytes free.", labels=dl)
        dtotal = GaugeMetricFamily("scenefarm_worker_disk_total_bytes", "Size.", labels=dl)
        dratio = GaugeMetricFamily("scenefarm_worker_disk_free_ratio", "Free share.", labels=dl)
        age = GaugeMetricFamily("scenefarm_worker_readings_age_seconds",
                                "Age of the worker's last host readings.", labels=["worker"])
        for (wid, _), (_, doc) in zip(live, hashes):
            if doc is None:
                continue
            try:
                d = json.loads(doc)
            except ValueError:
                continue
            if not isinstance(d, dict):
                continue
            w = wid.decode()
            inst = str(d.get("instance", ""))
            for x in (d.get("gpus") or [])[:16]:
                lab = [inst, str(x.get("index", "")), str(x.get("uuid", "")), w]
                info.add_metric(lab + [str(x.get("name", "")), "", str(x.get("source", ""))], 1)
                tot, free = x.get("total_bytes"), x.get("free_bytes")
                for key, fam in (("total_bytes", "total"), ("free_bytes", "free"),
                                 ("temperature_celsius", "temperature"),
                                 ("utilization_ratio", "utilization"), ("power_watts", "power")):
                    if isinstance(x.get(key), (int, float)):
                        name = {"total": "scenefarm_gpu_memory_total_bytes",
                                "free": "scenefarm_gpu_memory_free_bytes",
                                "temperature": "scenefarm_gpu_temperature_celsius",
                                "utilization": "scenefarm_gpu_utilization_ratio",
                                "power": "scenefarm_gpu_power_watts"}[fam]
                        g[name].add_metric(lab, x[key])
                if isinstance(tot, (int, float)) and isinstance(free, (int, float)):
                    g["scenefarm_gpu_memory_used_bytes"].add_metric(lab, tot - free)
            for x in (d.get("disks") or [])[:4]:
                tot, free = x.get("total_bytes"), x.get("free_bytes")
                if not isinstance(tot, (int, float)) or not isinstance(free, (int, float)):
                    continue
                lab = [w, str(x.get("path", ""))]
                dfree.add_metric(lab, free)
                dtotal.add_metric(lab, tot)
                if tot > 0:
                    dratio.add_metric(lab, free / tot)
            at = d.get("at", 0)
            if isinstance(at, (int, float)) and at > 0:
                age.add_metric([w], max(0.0, (now_ms - at) / 1000))
        yield info
        yield from g.values()
        yield from (dfree, dtotal, dratio, age)

        # scenes collector
        p = r.pipeline(transaction=False)
        for q in queues:
            p.hgetall("sf:{%s}:stats" % q)
            for key, _, _ in HISTOGRAMS:
                p.hgetall("sf:{%s}:h:%s" % (q, key))
        p.hget("sf:farm:stats", "contract_violations")
        v = p.execute()
        c = lambda n, h, lab: CounterMetricFamily(n, h, labels=lab)  # noqa: E731
        scenes = c("scenefarm_scenes", "Scene outcomes.", ["queue", "outcome"])
        enq = c("scenefarm_scenes_enqueued", "Scenes enqueued.", ["queue"])
        runs_done = c("scenefarm_runs_completed", "Runs finished.", ["queue"])
        compl = c("scenefarm_scene_completions", "Completions by method.", ["queue", "method"])
        exits = c("scenefarm_scene_history_exits", "Attempts by exit reason.", ["queue", "reason"])
        short = c("scenefarm_scene_frames_short", "Short scenes.", ["queue"])
        frames = c("scenefarm_scene_frames_collected", "Frames collected.", ["queue"])
        fb = c("scenefarm_scene_fallbacks", "Fallback notes.", ["queue", "reason"])
        hists = [HistogramMetricFamily(n, n, labels=["queue"]) for _, n, _ in HISTOGRAMS]
        i = 0
        for q in queues:
            st = {k.decode(): x.decode() for k, x in v[i].items()}
            i += 1
            for o in OUTCOMES:
                scenes.add_metric([q, o], num(st, o))
            enq.add_metric([q], num(st, "enqueued"))
            runs_done.add_metric([q], num(st, "runs_completed"))
            compl.add_metric([q, "done_marker"], num(st, "completion_done_marker"))
            compl.add_metric([q, "forced_copy"], num(st, "completion_forced_copy"))
            for e in EXIT_REASONS:
                exits.add_metric([q, e], num(st, "exit_" + e))
            short.add_metric([q], num(st, "frames_short"))
            frames.add_metric([q], num(st, "frames"))
            for f in FALLBACKS:
                fb.add_metric([q, f], num(st, "fallback_" + f))
            for h, (_, _, bounds) in zip(hists, HISTOGRAMS):
                raw = {k.decode(): x.decode() for k, x in v[i].items()}
                i += 1
                per = {b: 0 for b in bounds}
                total_sum, count = num(raw, "sum"), int(num(raw, "count"))
                for k, x in raw.items():
                    if k in ("sum", "count", "+Inf"):
                        continue
                    try:
                        per[float(k)] = per.get(float(k), 0) + int(x)
                    except ValueError:
                        pass
                cum, buckets = 0, []
                for b in sorted(per):
                    cum += per[b]
                    buckets.append((fmt(b), cum))
                buckets.append(("+Inf", count))
                h.add_metric([q], buckets, total_sum)
        viol = c("scenefarm_telemetry_contract_violations", "Contract violations.", [])
        viol.add_metric([], float(v[i] or 0))
        yield from (viol, scenes, enq, runs_done, compl, exits, short, frames, fb)
        yield from hists


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--window-seconds", type=float, default=30)
    a = p.parse_args()
    r = redis.Redis.from_url(a.redis_url)
    REGISTRY.register(FarmCollector(r, a.window_seconds * 1000))
    start_http_server(a.port, addr="127.0.0.1")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
