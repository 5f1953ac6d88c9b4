#!/usr/bin/python3
"""A/B of two scenefarm-exporter binaries on bench.py's exporter farm (issue #14 P5, P8).

One farm (bench.py's populate_farm and heartbeats: 10,000 workers + 100 queues by default), then
rounds alternating the two binaries (A B, B A, ...): each a fresh exporter with bench.py's
command line, warmed by one scrape, scraped SCRAPES times one after another; per round the
scrape p50/p99 (ms), the exporter's CPU time per scrape (all its threads, from /proc) and its
peak RSS (VmHWM, MiB), Redis's CPU time per scrape (INFO cpu; the heartbeats' share included,
the same for both), with the load average.

  /usr/bin/python3 bench/exporter_ab.py --build DIR --a OLD_BIN --b NEW_BIN \\
      [--rounds 3] [--scrapes 100] [--workers 10000] [--queues 100] [--gzip] [--readings]

--build is where scenefarm and scenefarm-test-worker come from (bench.py's setup). --gzip sends
Accept-Encoding: gzip as Prometheus does (bench.py's scrapes do not); --readings gives every
worker its host readings (bench.py's third exporter case).
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def cpu_seconds(pid):
    """The process's user + system CPU time (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(r):
    """Redis's user + system CPU time so far (INFO cpu), in seconds."""
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def scrape(port, n, gzip):
    times, size = [], 0
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    for _ in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t0) * 1000)
    return times, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--a", required=True, help="the old scenefarm-exporter")
    ap.add_argument("--b", required=True, help="the new scenefarm-exporter")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scrapes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=10000)
    ap.add_argument("--queues", type=int, default=100)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--readings", action="store_true")
    a = ap.parse_args()
    b = bench.Bench(argparse.Namespace(build=a.build, smoke=False, exporter_bin=a.a))
    rows = []
    try:
        b.flush()
        b.populate_farm(a.workers, a.queues, 100, a.readings)
        stop = threading.Event()
        beats = threading.Thread(target=b.heartbeats, args=(stop,))
        beats.start()
        try:
            for r in range(a.rounds):
                order = [("A", a.a), ("B", a.b)] if r % 2 == 0 else [("B", a.b), ("A", a.a)]
                for name, exe in order:
                    port = bench.free_port()
                    p = b.procs.start([exe, "--listen", f"127.0.0.1:{port}", "--redis-url", b.url,
                                       "--comfyui-url", "", "--gpu-source", "none",
                                       "--log-level", "warn"],
                                      stdout=bench.subprocess.DEVNULL,
                                      stderr=bench.subprocess.DEVNULL)
                    bench.wait_for(name, lambda: b._up(port), 60, 0.1)
                    cpu0, rcpu0 = cpu_seconds(p.pid), redis_cpu_seconds(b.r)
                    times, size = scrape(port, a.scrapes, a.gzip)
                    cpu_ms = (cpu_seconds(p.pid) - cpu0) * 1000 / a.scrapes
                    rcpu_ms = (redis_cpu_seconds(b.r) - rcpu0) * 1000 / a.scrapes
                    st = bench.proc_status(p.pid)
                    b.procs.stop(p)
                    row = {"round": r + 1, "exporter": name, "p50_ms": bench.percentile(times, 50),
                           "p99_ms": bench.percentile(times, 99), "peak_rss_mib": st["VmHWM"],
                           "cpu_ms_per_scrape": cpu_ms, "redis_cpu_ms_per_scrape": rcpu_ms,
                           "bytes": size,
                           "load1": os.getloadavg()[0]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            stop.set()
            beats.join()
    finally:
        b.close()
    for name in ("A", "B"):
        mine = [x for x in rows if x["exporter"] == name]
        print(f"{name}: p50 " + " ".join(f"{x['p50_ms']:.1f}" for x in mine) + " ms; p99 " +
              " ".join(f"{x['p99_ms']:.1f}" for x in mine) + " ms; peak RSS " +
              " ".join(f"{x['peak_rss_mib']:.1f}" for x in mine) + " MiB; exporter CPU " +
              " ".join(f"{x['cpu_ms_per_scrape']:.1f}" for x in mine) + " ms/scrape; Redis CPU " +
              " ".join(f"{x['redis_cpu_ms_per_scrape']:.1f}" for x in mine) + " ms/scrape")
    return 0


if __name__ == "__main__":
    sys.exit(main())
