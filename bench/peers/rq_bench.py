#!/usr/bin/python3
"""RQ 1.13 (Debian's python3-rq) beside scenefarm in bench/bench.py, on the same redis-server.

Subcommands print one JSON object on stdout:
  drain  --kind simple|fork --jobs N   enqueue N no-op jobs, then one burst worker drains them
  enqueue --jobs N [--batch B]          Queue.enqueue_many, B jobs per pipelined call
  worker --kind simple|fork             a worker until SIGTERM (the pickup benchmark's)
  pickup --jobs N --gap-min S --gap-max S   enqueue N jobs one at a time, S seconds apart,
                                        then wait for them: enqueue -> started (ms) per job
Run it with /usr/bin/python3 (Debian's modules).
"""
import argparse
import json
import logging
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis  # noqa: E402
from rq import Queue, SimpleWorker, Worker  # noqa: E402
from rq.job import Job  # noqa: E402

import rq_jobs  # noqa: E402,F401  (the worker imports it by name)


def used_memory(r):
    return int(r.info("memory")["used_memory"])


def enqueue_jobs(q, n, batch):
    r = q.connection
    for start in range(0, n, batch):
        datas = [Queue.prepare_data(rq_jobs.noop, job_id=f"j{i}")
                 for i in range(start, min(n, start + batch))]
        with r.pipeline() as pipe:
            q.enqueue_many(datas, pipeline=pipe)
            pipe.execute()


def cmd_drain(a, r):
    q = Queue("bench", connection=r)
    enqueue_jobs(q, a.jobs, 1000)
    cls = SimpleWorker if a.kind == "simple" else Worker
    w = cls([q], connection=r)
    t0 = time.monotonic()
    w.work(burst=True, logging_level="WARNING")
    secs = time.monotonic() - t0
    left = q.count
    done = a.jobs - left
    return {"kind": a.kind, "jobs": a.jobs, "done": done, "seconds": secs,
            "jobs_per_s": done / secs}


def cmd_enqueue(a, r):
    q = Queue("bench", connection=r)
    before = used_memory(r)
    t0 = time.monotonic()
    enqueue_jobs(q, a.jobs, a.batch)
    secs = time.monotonic() - t0
    after = used_memory(r)
    n = q.count
    return {"jobs": n, "seconds": secs, "jobs_per_s": n / secs,
            "bytes_per_pending": (after - before) / max(n, 1), "batch": a.batch}


def cmd_worker(a, r):
    logging.basicConfig(level=logging.WARNING)
    q = Queue("pickup", connection=r)
    cls = SimpleWorker if a.kind == "simple" else Worker
    cls([q], connection=r).work(burst=False, logging_level="WARNING")
    return None


def cmd_pickup(a, r):
    q = Queue("pickup", connection=r)
    ids = []
    for i in range(a.jobs):
        time.sleep(random.uniform(a.gap_min, a.gap_max))
        ids.append(q.enqueue(rq_jobs.noop, job_id=f"p{i}").id)
    deadline = time.monotonic() + 60
    lat = []
    for jid in ids:
        while True:
            job = Job.fetch(jid, connection=r)
            if job.started_at is not None and job.get_status() == "finished":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"rq pickup: job {jid} not finished within 60 s")
            time.sleep(0.01)
        lat.append((job.started_at - job.enqueued_at).total_seconds() * 1000)
    return {"jobs": len(lat), "latency_ms": lat}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["drain", "enqueue", "worker", "pickup"])
    p.add_argument("--url", required=True)
    p.add_argument("--kind", choices=["simple", "fork"], default="simple")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--gap-min", type=float, default=0.5)
    p.add_argument("--gap-max", type=float, default=2.5)
    a = p.parse_args()
    r = redis.Redis.from_url(a.url)
    out = {"drain": cmd_drain, "enqueue": cmd_enqueue, "worker": cmd_worker,
           "pickup": cmd_pickup}[a.cmd](a, r)
    if out is not None:
        import rq
        out["rq_version"] = rq.__version__
        print(json.dumps(out))


if __name__ == "__main__":
    main()
