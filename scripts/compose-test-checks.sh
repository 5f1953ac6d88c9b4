# The checks of scripts/compose-test.sh (sourced by it; uses its COMPOSE, PROJECT, WORK, step,
# fail, wait_until, write_scenes, enqueue, status_is, status_json).

project_containers() {
  podman ps -a --filter "label=com.docker.compose.project=$PROJECT" "$@" --format '{{.Names}}'
}

# Every container healthy, by the healthcheck compose declared and no other: podman 4.3's Docker
# API drops empty arguments and splits arguments at spaces on the way, so a healthcheck is
# compared as stored in the container against `compose config`.
check_healthchecks() {
  step "healthchecks: as declared, and passing"
  local c service want got
  "${COMPOSE[@]}" config >"$WORK/config.yml" || fail "compose config"
  for c in $(project_containers); do
    wait_until "$c to be healthy" 240 bash -c "podman inspect --format '{{.State.Health.Status}}' $c | grep -qx healthy"
    service=$(podman inspect --format '{{index .Config.Labels "com.docker.compose.service"}}' "$c")
    want=$(/usr/bin/python3 -c 'import json, sys, yaml
print(json.dumps(yaml.safe_load(open(sys.argv[1]))["services"][sys.argv[2]]["healthcheck"]["test"]))' \
      "$WORK/config.yml" "$service")
    got=$(podman inspect --format '{{json .Config.Healthcheck.Test}}' "$c")
    [ "$(jq -c . <<<"$want")" = "$(jq -c . <<<"$got")" ] ||
      fail "$c runs the healthcheck $got, compose declared $want"
  done
  echo "compose-test: $(project_containers | wc -l) containers healthy, healthchecks intact"
}

check_render_and_artifacts() {
  wait_until "3 live workers" 120 status_is '.workers.live == 3'
  step "enqueue 6 scenes with the CLI in a container; wait for them to succeed"
  write_scenes compose-a 6 4 50
  enqueue compose-a
  wait_until "6 scenes done" 240 status_is '.outcomes.succeeded + .outcomes.dead_lettered >= 6'
  status_is '.outcomes.succeeded == 6 and .depth.dead == 0' || fail "$(status_json)"
  "${COMPOSE[@]}" exec -T --index=1 worker find /artifacts -printf '%U:%G %y %p\n' \
    >"$WORK/artifacts.txt" || fail "cannot list /artifacts"
  grep -qx '10001:10001 d /artifacts' "$WORK/artifacts.txt" || fail "/artifacts is not the worker's"
  local owners frames i
  owners=$(grep ' /artifacts/compose-a' "$WORK/artifacts.txt" | cut -d' ' -f1 | sort -u)
  [ "$owners" = 10001:10001 ] || fail "artifacts owned by $owners, not the worker's uid 10001"
  for i in 01 02 03 04 05 06; do
    frames=$(grep -c "^10001:10001 f /artifacts/compose-a/compose-a-$i/.*\.png$" "$WORK/artifacts.txt" || true)
    [ "$frames" -eq 4 ] || fail "compose-a-$i has $frames frames, not 4"
    grep -q " /artifacts/compose-a/compose-a-$i/telemetry.json$" "$WORK/artifacts.txt" ||
      fail "compose-a-$i has no telemetry.json"
  done
  "${COMPOSE[@]}" exec -T worker scenefarm validate /artifacts/compose-a >"$WORK/validate.txt" 2>&1 ||
    { cat "$WORK/validate.txt" >&2; fail "scenefarm validate /artifacts/compose-a"; }
  echo "compose-test: 24 frames in the artifacts volume, uid 10001; the run validates"
}

# /metrics read from inside the compose network (from the ComfyUI container, by name).
check_metrics() {
  step "scrape the exporter at http://exporter:9870/metrics over the compose network"
  "${COMPOSE[@]}" exec -T comfyui python3 -c 'import socket
s = socket.create_connection(("exporter", 9870), 10)
s.sendall(b"GET /metrics HTTP/1.0\r\nHost: exporter\r\n\r\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
print(out.decode())' >"$WORK/metrics.txt" || fail "cannot scrape the exporter"
  head -1 "$WORK/metrics.txt" | grep -q ' 200 ' || fail "/metrics: $(head -1 "$WORK/metrics.txt")"
  grep -Eq '^scenefarm_scenes_total\{[^}]*outcome="succeeded"[^}]*\} 6$' "$WORK/metrics.txt" ||
    fail "/metrics does not count 6 succeeded scenes"
  grep -Eq '^scenefarm_workers_live 3$' "$WORK/metrics.txt" || fail "/metrics: not 3 live workers"
  grep -Eq '^scenefarm_comfyui_up\{[^}]*instance="http://comfyui:8188"[^}]*\} 1$' "$WORK/metrics.txt" ||
    fail "/metrics: comfyui not up"
  echo "compose-test: /metrics: 6 succeeded, 3 live workers, comfyui up"
}

# A ComfyUI that dies comes back (restart: unless-stopped) and is healthy again.
check_comfyui_restart() {
  step "ComfyUI killed (SIGKILL from the host): its restart policy brings it back"
  local c=${PROJECT}_comfyui_1 pid
  pid=$(podman inspect --format '{{.State.Pid}}' "$c")
  kill -KILL "$pid"
  wait_until "$c to restart" 120 bash -c "[ \$(podman inspect --format '{{.RestartCount}}' $c) -ge 1 ]"
  wait_until "$c to be healthy again" 120 bash -c "podman inspect --format '{{.State.Health.Status}}' $c | grep -qx healthy"
}

# compose scales the workers down to 2 while all 3 render: the one it stops gets SIGTERM, drains
# (finishes or releases its scene) and exits 0 within stop_grace_period; every scene succeeds.
check_drain() {
  step "a worker stopped by compose (--scale worker=2) mid-render drains; nothing is lost"
  # 6 scenes of 16 s each through one ComfyUI (it renders one prompt at a time): each worker
  # holds a scene for a minute or more, long enough to be seen busy and stopped mid-render.
  local c=${PROJECT}_worker_3 in_hand id host
  host=$(podman inspect --format '{{.Config.Hostname}}' "$c")
  write_scenes compose-b 6 8 2000
  enqueue compose-b
  wait_until "$c to render a scene" 90 \
    status_is ".workers.list[] | select(.host == \"$host\") | .busy"
  in_hand=$(status_json | jq -r --arg h "$host" '.workers.list[] | select(.host == $h and .busy) | .scene')
  [ -n "$in_hand" ] || fail "$c holds no scene before it is stopped"
  podman logs -f "$c" >"$WORK/worker-3.log" 2>&1 &
  pids+=($!)
  (podman wait "$c" >"$WORK/worker-3.exit" 2>&1) &
  pids+=($!)
  "${COMPOSE[@]}" up -d --no-deps --no-build --scale worker=2 worker >"$WORK/scale.log" 2>&1 ||
    { cat "$WORK/scale.log" >&2; fail "compose --scale worker=2"; }
  wait_until "$c to exit" 200 test -s "$WORK/worker-3.exit"
  [ "$(head -1 "$WORK/worker-3.exit")" = 0 ] || fail "$c exited $(cat "$WORK/worker-3.exit")"
  grep -q '"worker_draining"' "$WORK/worker-3.log" && grep -q '"worker_stopped"' "$WORK/worker-3.log" ||
    fail "$c did not drain (log in $WORK/worker-3.log)"
  ! grep -q '"drain_timeout"' "$WORK/worker-3.log" || fail "$c ran out of drain time"
  wait_until "12 scenes done" 300 status_is '.outcomes.succeeded + .outcomes.dead_lettered >= 12'
  status_is '.outcomes.succeeded == 12 and .depth.dead == 0 and .depth.leased == 0 and .depth.pending == 0' ||
    fail "scenes lost or failed: $(status_json)"
  # The scene it rendered when stopped, and any it had leased ahead: finished or released.
  for id in $in_hand $(grep '"scene_leased"' "$WORK/worker-3.log" | grep -o '"scene_id":"compose-b-[0-9]*"' | cut -d'"' -f4); do
    "${COMPOSE[@]}" exec -T exporter scenefarm jobs show "$id" --json | jq -e '.state == "succeeded"' >/dev/null ||
      fail "$id, held by the stopped worker, did not succeed"
  done
  echo "compose-test: the worker stopped while rendering $in_hand drained, exited 0; nothing lost"
}

check_nothing_left() {
  local left
  left=$(project_containers; podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT";
         podman network ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || fail "compose down left: $left"
  echo "compose-test: no container, volume or network of $PROJECT left"
}
