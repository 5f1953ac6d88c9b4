"""Offline checks of deploy/kubernetes/*.yaml: YAML validity, the fields every object needs, and
what scenefarm relies on (drain grace period, KEDA trigger, PDB, scrape annotations, probes)."""
import glob
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
errors = []
docs = []
for path in sorted(glob.glob(os.path.join(HERE, "..", "kubernetes", "*.yaml"))):
    with open(path) as f:
        for d in yaml.safe_load_all(f):
            if d is None:
                continue
            for field in ("apiVersion", "kind", "metadata"):
                if field not in d:
                    errors.append("%s: an object without %s" % (path, field))
            if "name" not in d.get("metadata", {}):
                errors.append("%s: a %s without metadata.name" % (path, d.get("kind")))
            docs.append(d)

by = {(d["kind"], d["metadata"]["name"]): d for d in docs if "kind" in d and "metadata" in d}


def need(cond, what):
    if not cond:
        errors.append(what)


w = by.get(("Deployment", "scenefarm-worker"))
need(w is not None, "no worker Deployment")
if w:
    spec = w["spec"]["template"]["spec"]
    need(spec.get("terminationGracePeriodSeconds", 0) >= 600,
         "worker terminationGracePeriodSeconds shorter than the 600 s drain")
    need(w["spec"]["selector"]["matchLabels"].items() <= w["spec"]["template"]["metadata"]["labels"].items(),
         "worker selector does not match its pod labels")
    names = [c["name"] for c in spec["containers"]]
    need("worker" in names, "no worker container")
    env = {e["name"]: e for c in spec["containers"] for e in c.get("env", [])}
    need("SCENEFARM_WORKER_ID" in env, "worker id not set from the pod name")
so = by.get(("ScaledObject", "scenefarm-worker"))
need(so is not None, "no KEDA ScaledObject")
if so:
    need(so["spec"]["scaleTargetRef"]["name"] == "scenefarm-worker", "ScaledObject targets another Deployment")
    q = so["spec"]["triggers"][0]["metadata"].get("query", "")
    need("scenefarm_queue_depth" in q and "pending" in q, "KEDA trigger does not read the queue depth")
need(("PodDisruptionBudget", "scenefarm-worker") in by, "no PodDisruptionBudget for workers")
e = by.get(("Deployment", "scenefarm-exporter"))
need(e is not None, "no exporter Deployment")
if e:
    ann = e["spec"]["template"]["metadata"].get("annotations", {})
    need(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9870",
         "exporter pods lack scrape annotations")
    c = e["spec"]["template"]["spec"]["containers"][0]
    need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", "exporter readiness is not /readyz")
need(("Service", "scenefarm-exporter") in by, "no exporter Service")

for err in errors:
    print("kubernetes: " + err, file=sys.stderr)
print("kubernetes: %d objects checked, %d problems" % (len(docs), len(errors)))
sys.exit(1 if errors else 0)
