"""Offline checks of the compose files and the Dockerfile, as docker-compose and podman-compose
read them.
Usage: python3 check_compose.py DOCKER_COMPOSE_CONFIG TEST_CONFIG PODMAN_COMPOSE_DRY_RUN IMAGE_LIST

Healthchecks: a list starting with CMD, no shell, no empty argument and no argument with white
space in it. podman 4.3's Docker API (docker-compose through `podman system service`) joins the
arguments with spaces and splits them again, dropping "" and cutting "a b" in two;
podman-compose 1.0.3 quotes them into a shell line. Both keep such a command intact.
Substitution: podman-compose leaves ${VAR:-} (an empty default) as it is; none may remain."""
import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
errors = []


def need(cond, what):
    if not cond:
        errors.append(what)


def check_test(where, test):
    need(isinstance(test, list) and test and test[0] == "CMD",
         "%s: healthcheck %r is not an exec form [\"CMD\", ...]" % (where, test))
    if not isinstance(test, list):
        return
    for arg in test[1:]:
        need(arg != "", "%s: healthcheck has an empty argument: %r" % (where, test))
        need(not re.search(r"\s", arg), "%s: healthcheck argument %r has white space" % (where, arg))


base = yaml.safe_load(open(sys.argv[1]))
test = yaml.safe_load(open(sys.argv[2]))
podman_text = open(sys.argv[3]).read()
images = open(sys.argv[4]).read().split()

for cfg_name, cfg in (("docker-compose.yml", base), ("with docker-compose.test.yml", test)):
    for name, svc in cfg["services"].items():
        if "healthcheck" in svc:
            check_test("%s %s" % (cfg_name, name), svc["healthcheck"].get("test"))
for name in ("redis", "comfyui", "exporter", "worker"):
    need("healthcheck" in base["services"][name], "service %s has no healthcheck" % name)
need(base["services"]["comfyui"].get("restart") in ("always", "unless-stopped"),
     "comfyui has no restart policy")
deps = base["services"]["worker"].get("depends_on", {})
need(deps.get("comfyui", {}).get("condition") == "service_healthy",
     "workers do not wait for a healthy ComfyUI")
need(deps.get("redis", {}).get("condition") == "service_healthy", "workers do not wait for Redis")

by_repo = {i.split(":")[0]: i for i in images}
for name in ("worker", "exporter"):
    img = base["services"][name]["image"]
    need(img in images, "%s image %s is not one `make images` produces (%s)" % (name, img, " ".join(images)))
for name, repo in (("redis", "scenefarm-redis"), ("comfyui", "scenefarm-comfyui-test-server"),
                   ("exporter", "scenefarm-exporter"), ("worker", "scenefarm-worker")):
    need(repo in by_repo and test["services"][name]["image"] == repo + ":prebuilt",
         "the test override runs %s from %s, not %s:prebuilt" % (name, test["services"][name]["image"], repo))

need("${" not in podman_text, "podman-compose leaves a variable unsubstituted: %s"
     % [l.strip() for l in podman_text.splitlines() if "${" in l])

dockerfile = open(os.path.join(HERE, "..", "docker", "Dockerfile")).read().replace("\\\n", " ")
for m in re.finditer(r"^HEALTHCHECK\s.*?CMD\s+(\[.*\])\s*$", dockerfile, re.M):
    check_test("Dockerfile", ["CMD"] + json.loads(m.group(1)))
need(len(re.findall(r"^HEALTHCHECK", dockerfile, re.M)) >= 4, "Dockerfile: a target without HEALTHCHECK")
need(re.search(r"install -d -o 10001 -g 10001 [^&]*/artifacts", dockerfile) is not None,
     "Dockerfile: /artifacts is not created for uid 10001 (a fresh volume there would be root's)")
need(re.search(r"^USER 10001", dockerfile, re.M) is not None, "Dockerfile: the images run as root")
# Every stage an image is built from runs as a user other than root: its own USER or the one of
# the stage it starts FROM (issue #15 R6). The build stages compile and are never run.
stage_user, stage_parent = {}, {}
current = None
for line in dockerfile.splitlines():
    m = re.match(r"^FROM\s+(\S+)\s+AS\s+(\S+)", line)
    if m:
        current = m.group(2)
        stage_parent[current] = m.group(1)
        continue
    m = re.match(r"^USER\s+(\S+)", line)
    if m and current:
        stage_user[current] = m.group(1)


def user_of(stage):
    while stage in stage_parent:
        if stage in stage_user:
            return stage_user[stage]
        stage = stage_parent[stage]
    return "root"


for stage in stage_parent:
    if stage.startswith("build") or stage == "runtime":
        continue
    u = user_of(stage).split(":")[0]
    need(u not in ("root", "0"), "Dockerfile: stage %s runs as root" % stage)
for svc, spec in list(base["services"].items()) + list((test or {}).get("services", {}).items()):
    spec = spec or {}
    need(not spec.get("privileged"), "compose: %s is privileged" % svc)
    need(str(spec.get("user", "")).split(":")[0] not in ("root", "0"), "compose: %s runs as root" % svc)
    need(not spec.get("cap_add"), "compose: %s adds capabilities %s" % (svc, spec.get("cap_add")))

for err in errors:
    print("compose: " + err, file=sys.stderr)
print("compose: %d services, healthchecks and images checked, %d problems"
      % (len(base["services"]), len(errors)))
sys.exit(1 if errors else 0)
