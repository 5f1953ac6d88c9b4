#!/usr/bin/env bash
# Runs the healthchecks of a compose project's containers under podman where nothing else does.
# podman schedules healthchecks with systemd timers; without systemd as PID 1 (containers, CI,
# minimal hosts) a container stays "starting" for ever and `depends_on: condition:
# service_healthy` never resolves. This loop does what the timers would: `podman healthcheck
# run` on every running container of the project, every INTERVAL seconds for a container that
# is not yet healthy and every 30 s for one that is, for at most MAX_SECONDS.
#   scripts/podman-healthchecks.sh PROJECT [INTERVAL=2] [MAX_SECONDS=3600]
# Uses the podman settings of the environment (scripts/podman-env.sh for the project's own).
set -uo pipefail
project=${1:?usage: podman-healthchecks.sh PROJECT [INTERVAL] [MAX_SECONDS]}
interval=${2:-2}
max_seconds=${3:-3600}
end=$((SECONDS + max_seconds))
declare -A last_healthy=()
while [ "$SECONDS" -lt "$end" ]; do
  while read -r name status; do
    [ -n "$name" ] || continue
    if [[ $status == *"(healthy)"* ]] && [ $((SECONDS - ${last_healthy[$name]:-0})) -lt 30 ]; then
      continue
    fi
    if podman healthcheck run "$name" >/dev/null 2>&1; then
      last_healthy[$name]=$SECONDS
    fi
  done < <(podman ps --filter "label=com.docker.compose.project=$project" \
             --format '{{.Names}} {{.Status}}' 2>/dev/null)
  sleep "$interval"
done
