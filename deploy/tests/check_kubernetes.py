"""Offline checks of deploy/kubernetes/*.yaml.

Schema: every object of the core API groups is read into the Kubernetes Python client's models
(Debian's python3-kubernetes) and written back; a field the models do not know (a typo, a field
in the wrong place) is lost on the way and reported, a missing required field or a value of the
wrong type fails the read. KEDA's ScaledObject (a custom resource) is checked by hand.
Then what scenefarm relies on: the images `make images` produces (scripts/images.sh --list),
the drain grace period, the KEDA trigger (its query evaluated by promtool on sample depths), the PDB, scrape annotations, ComfyUI's probes, no
empty argument in an exec probe, and the artifacts claim declared ReadWriteMany.
Usage: python3 check_kubernetes.py IMAGE_LIST_FILE"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml
from kubernetes import client

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


def model_name(d):
    """apps/v1 Deployment -> V1Deployment; None for groups the client has no models of."""
    group, _, version = d["apiVersion"].rpartition("/")
    if group not in ("", "apps", "policy", "batch", "autoscaling", "networking.k8s.io"):
        return None
    return version.capitalize() + d["kind"]


def lost_fields(original, written, where):
    """Paths present in the manifest but not in the model's round trip."""
    if isinstance(original, dict):
        if not isinstance(written, dict):
            return [where]
        out = []
        for k, v in original.items():
            if k not in written:
                out.append("%s.%s" % (where, k))
            else:
                out += lost_fields(v, written[k], "%s.%s" % (where, k))
        return out
    if isinstance(original, list):
        if not isinstance(written, list) or len(written) != len(original):
            return [where]
        return [p for i, v in enumerate(original) for p in lost_fields(v, written[i], "%s[%d]" % (where, i))]
    return [] if str(original) == str(written) else ["%s (%r read as %r)" % (where, original, written)]


def check_schema(d):
    name = model_name(d)
    what = "%s %s" % (d.get("kind"), d.get("metadata", {}).get("name"))
    if name is None:
        return
    api = client.ApiClient()
    if not hasattr(client, name):
        errors.append("%s: no model %s in the Kubernetes client" % (what, name))
        return
    try:
        obj = api._ApiClient__deserialize(d, name)
    except (ValueError, TypeError) as e:
        errors.append("%s: %s" % (what, e))
        return
    for p in lost_fields(d, api.sanitize_for_serialization(obj), ""):
        errors.append("%s: field %s is not in the %s schema" % (what, p.lstrip("."), name))


for d in docs:
    check_schema(d)

images = set(open(sys.argv[1]).read().split()) if len(sys.argv) > 1 else set()
containers = [
    (d["metadata"]["name"], c)
    for d in docs
    if d.get("kind") == "Deployment"
    for c in d["spec"]["template"]["spec"]["containers"]
]
for owner, c in containers:
    if c["image"].split(":")[0].startswith("scenefarm-"):
        need(c["image"] in images, "%s/%s: image %s is not one `make images` produces (%s)"
             % (owner, c["name"], c["image"], ", ".join(sorted(images))))
        need(c.get("imagePullPolicy") == "IfNotPresent",
             "%s/%s: imagePullPolicy must be IfNotPresent for locally built images" % (owner, c["name"]))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        cmd = c.get(probe, {}).get("exec", {}).get("command", [])
        need(all(a.strip() for a in cmd), "%s/%s: %s has an empty argument" % (owner, c["name"], probe))

w = by.get(("Deployment", "scenefarm-worker"))
need(w is not None, "no worker Deployment")
if w:
    spec = w["spec"]["template"]["spec"]
    need(spec.get("terminationGracePeriodSeconds", 0) >= 600,
         "worker terminationGracePeriodSeconds shorter than the 600 s drain")
    need(w["spec"]["selector"]["matchLabels"].items() <= w["spec"]["template"]["metadata"]["labels"].items(),
         "worker selector does not match its pod labels")
    cs = {c["name"]: c for c in spec["containers"]}
    need("worker" in cs, "no worker container")
    env = {e["name"]: e for c in spec["containers"] for e in c.get("env", [])}
    need("SCENEFARM_WORKER_ID" in env, "worker id not set from the pod name")
    comfy = cs.get("comfyui", {})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        need(comfy.get(probe, {}).get("httpGet", {}).get("path") == "/system_stats",
             "ComfyUI %s does not ask /system_stats" % probe)
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])
              if "persistentVolumeClaim" in v]
    for claim in claims:
        pvc = by.get(("PersistentVolumeClaim", claim))
        need(pvc is not None, "worker pods use the claim %s, which is not declared" % claim)
        if pvc:
            need(pvc["spec"].get("accessModes") == ["ReadWriteMany"],
                 "claim %s is shared by every worker pod: it must be ReadWriteMany" % claim)
so = by.get(("ScaledObject", "scenefarm-worker"))
need(so is not None, "no KEDA ScaledObject")
if so:
    need(so["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject apiVersion is not keda.sh/v1alpha1")
    need(so["spec"]["scaleTargetRef"]["name"] == "scenefarm-worker", "ScaledObject targets another Deployment")
    q = so["spec"]["triggers"][0]["metadata"].get("query", "")
    need("scenefarm_queue_depth" in q and "pending" in q, "KEDA trigger does not read the queue depth")
    # Only a lease promotes a delayed scene whose backoff ended: a farm at zero must wake for it.
    need(re.search(r'state=~"[^"]*\bleased\b', q) is not None and
         re.search(r'state(=|=~)"[^"]*\bdelayed\b', q) is not None,
         "KEDA trigger must count pending and leased scenes and wake for delayed ones")
    need(re.fullmatch(r"\d+", str(so["spec"]["triggers"][0]["metadata"].get("threshold", ""))) is not None,
         "KEDA threshold is not a whole number")


def keda_query_values(query):
    """The query's value on sample depths, by promtool (None when promtool is not installed)."""
    if not shutil.which("promtool"):
        return None
    cases = [  # (pending, delayed, leased) -> workers' worth of scenes
        ((0, 3, 0), 1),   # a farm at zero with scenes in backoff wakes one worker
        ((0, 0, 0), 0),   # nothing to do: scales to zero
        ((4, 30, 1), 6),  # backoffs add one, not thirty
    ]
    series, tests = [], []
    for i, ((p, d, l), want) in enumerate(cases):
        q = "q%d" % i
        for state, v in (("pending", p), ("delayed", d), ("leased", l)):
            series.append({"series": 'scenefarm_queue_depth{queue="%s",state="%s"}' % (q, state),
                           "values": str(v)})
        tests.append({"expr": query.replace('queue="scenes"', 'queue="%s"' % q), "eval_time": "0m",
                      "exp_samples": [{"labels": "{}", "value": want}]})
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.yml")
        with open(rules, "w") as f:
            yaml.safe_dump({"groups": []}, f)
        spec = os.path.join(tmp, "test.yml")
        with open(spec, "w") as f:
            yaml.safe_dump({"rule_files": [rules], "evaluation_interval": "1m", "tests": [
                {"interval": "1m", "input_series": series, "promql_expr_test": tests}]}, f)
        r = subprocess.run(["promtool", "test", "rules", spec], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr


if so:
    ok = keda_query_values(so["spec"]["triggers"][0]["metadata"].get("query", ""))
    need(ok is None or ok[0], "KEDA query gives the wrong worker counts: %s" % (ok and ok[1]))
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

# Every pod runs as a user other than root, and no container asks for privileges (issue #15 R6).
for d in docs:
    spec = d.get("spec", {}) if isinstance(d.get("spec"), dict) else {}
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if not pod:
        continue
    name = "%s/%s" % (d["kind"], d["metadata"]["name"])
    psc = pod.get("securityContext", {})
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        csc = c.get("securityContext", {})
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        need(non_root and uid not in (None, 0), "%s: container %s may run as root" % (name, c.get("name")))
        need(not csc.get("privileged") and csc.get("allowPrivilegeEscalation") is not True,
             "%s: container %s is privileged" % (name, c.get("name")))

for err in errors:
    print("kubernetes: " + err, file=sys.stderr)
print("kubernetes: %d objects checked (schema and scenefarm's needs), %d problems" % (len(docs), len(errors)))
sys.exit(1 if errors else 0)
