"""Checks of deploy/systemd that systemd-analyze verify cannot make: the directories the settings
name are writable under ProtectSystem=strict, the order Redis -> ComfyUI -> worker (and the
exporter, repair, purge after Redis), ComfyUI kept alive (a health check that restarts it, a
restart policy, an unprivileged user), timers for the health check, repair and purge, users and
directories declared for sysusers/tmpfiles, and logs in the journal only (nothing rotates files
no unit writes).
Usage: python3 check_systemd.py"""
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEMD = os.path.join(HERE, "..", "systemd")
errors = []


def need(cond, what):
    if not cond:
        errors.append(what)


def unit(name):
    """{(section, key): [values]} of a unit file; repeated keys and space-separated lists joined."""
    out, section = {}, None
    with open(os.path.join(SYSTEMD, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key), []).extend(value.split() if key not in ("ExecStart", "ExecCondition", "Description") else [value])
    return out


def defaults(name):
    env = {}
    with open(os.path.join(SYSTEMD, name)) as f:
        for line in f:
            m = re.match(r"^([A-Z_]+)=(.*)$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def writable(u, path):
    """True when path is under one of the unit's ReadWritePaths."""
    for p in u.get(("Service", "ReadWritePaths"), []):
        p = p.lstrip("-")
        if path == p or path.startswith(p.rstrip("/") + "/"):
            return True
    return False


sf = defaults("scenefarm.default")
comfy = defaults("comfyui.default")
worker, repair = unit("scenefarm-worker@.service"), unit("scenefarm-repair.service")
for what, u in (("worker", worker), ("repair", repair)):
    for var in ("SCENEFARM_COMFYUI_OUTPUT_DIR", "SCENEFARM_ARTIFACTS_DIR"):
        need(writable(u, sf[var]), "%s: %s=%s is outside its ReadWritePaths %s"
             % (what, var, sf[var], u.get(("Service", "ReadWritePaths"))))
need(comfy["COMFYUI_OUTPUT_DIR"] == sf["SCENEFARM_COMFYUI_OUTPUT_DIR"],
     "ComfyUI writes %s, workers read %s" % (comfy["COMFYUI_OUTPUT_DIR"], sf["SCENEFARM_COMFYUI_OUTPUT_DIR"]))

comfyui = unit("comfyui@.service")
need(writable(comfyui, comfy["COMFYUI_OUTPUT_DIR"]), "comfyui@: its output directory is read-only")
need(comfyui.get(("Service", "User"), ["root"])[0] not in ("root", "0"), "comfyui@ runs as root")
need(comfyui.get(("Service", "Restart"), ["no"])[0] in ("always", "on-failure"), "comfyui@ is not restarted")
need("-/etc/default/comfyui-%i" in comfyui.get(("Service", "EnvironmentFile"), []),
     "comfyui@: no per-instance settings (the GPU of the instance)")
for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes")):
    need(comfyui.get(("Service", key)) == [want], "comfyui@: %s is not %s" % (key, want))

after = lambda u: u.get(("Unit", "After"), [])
need("redis-server.service" in after(worker) and "comfyui@%i.service" in after(worker),
     "worker@ is not ordered after Redis and its ComfyUI")
for name in ("scenefarm-exporter.service", "scenefarm-repair.service", "scenefarm-purge.service"):
    need("redis-server.service" in after(unit(name)), "%s is not ordered after Redis" % name)

health = unit("comfyui-health@.service")
start = " ".join(health.get(("Service", "ExecStart"), []))
need("scenefarm health --only comfyui" in start and "--down-seconds" in start,
     "comfyui-health@ does not run `scenefarm health --only comfyui --down-seconds`")
need(health.get(("Unit", "OnFailure")) == ["comfyui-restart@%i.service"], "a failed health check restarts nothing")
need("try-restart comfyui@%i.service" in " ".join(unit("comfyui-restart@.service").get(("Service", "ExecStart"), [])),
     "comfyui-restart@ does not restart comfyui@%i")
need("comfyui-health@%i.timer" in comfyui.get(("Install", "Also"), []), "enabling comfyui@ leaves its health timer off")
for timer in ("comfyui-health@.timer", "scenefarm-repair.timer", "scenefarm-purge.timer"):
    need(os.path.exists(os.path.join(SYSTEMD, timer)), "no %s" % timer)

users = set()
with open(os.path.join(SYSTEMD, "scenefarm.sysusers")) as f:
    users = {l.split()[1] for l in f if l.strip() and not l.startswith("#")}
tmpdirs = set()
with open(os.path.join(SYSTEMD, "scenefarm.tmpfiles")) as f:
    tmpdirs = {l.split()[1] for l in f if l.strip() and not l.startswith("#")}
for path in sorted(glob.glob(os.path.join(SYSTEMD, "*.service"))):
    u, name = unit(os.path.basename(path)), os.path.basename(path)
    for key in ("User", "Group"):
        for v in u.get(("Service", key), []):
            need(v in users, "%s: %s=%s is not in scenefarm.sysusers" % (name, key, v))
    for p in u.get(("Service", "ReadWritePaths"), []):
        # Without "-" a missing directory stops the unit from starting (ProtectSystem=strict).
        need(p.startswith("-") or p in tmpdirs, "%s: ReadWritePaths %s is not created by scenefarm.tmpfiles" % (name, p))
    for key in ("StandardOutput", "StandardError"):
        for v in u.get(("Service", key), []):
            need(not re.match(r"^(file|append|truncate):", v), "%s logs to a file (%s): use the journal" % (name, v))
# Every service runs unprivileged (issue #15 R6): a named user other than root or a dynamic
# one, and without a way to gain privileges.
for path in sorted(glob.glob(os.path.join(SYSTEMD, "*.service"))):
    name = os.path.basename(path)
    u = unit(name)
    dynamic = u.get(("Service", "DynamicUser"), ["no"])[0] == "yes"
    user = u.get(("Service", "User"), ["root"])[0]
    if name == "comfyui-restart@.service":  # systemctl restart needs uid 0: no capabilities then
        need(u.get(("Service", "CapabilityBoundingSet"), ["x"]) == [], "%s: root with capabilities" % name)
    else:
        need(dynamic or user not in ("root", "0"), "%s runs as root" % name)
    need(u.get(("Service", "NoNewPrivileges"), ["no"])[0] == "yes", "%s lacks NoNewPrivileges=yes" % name)
need(not glob.glob(os.path.join(HERE, "..", "logrotate*")),
     "deploy/logrotate rotates files that no unit writes (every unit logs to the journal)")
need(os.path.exists(os.path.join(SYSTEMD, "journald.conf.d", "scenefarm.conf")), "no journald retention for the logs")

for err in errors:
    print("systemd: " + err, file=sys.stderr)
print("systemd: directories, order, ComfyUI health, timers, users and logs checked, %d problems" % len(errors))
sys.exit(1 if errors else 0)
