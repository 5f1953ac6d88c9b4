#!/usr/bin/env bash
# The alerting checks CI runs: promtool check rules, promtool test rules, amtool check-config and
# routing cases. Usage: bash alerts/tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
promtool check rules scenefarm.rules.yml
promtool test rules tests/scenefarm.test.yml
amtool check-config alertmanager.yml

route() {  # route EXPECTED_RECEIVERS LABEL=VALUE...
  local want=$1
  shift
  local got
  got=$(amtool config routes test --config.file=alertmanager.yml "$@")
  if [ "$got" != "$want" ]; then
    echo "route of $*: got '$got', want '$want'" >&2
    exit 1
  fi
  echo "route of $*: $got"
}
route scenefarm-critical alertname=ScenefarmComfyUiDown severity=critical instance=http://c1:8188
route scenefarm-warning alertname=ScenefarmQueueBacklog severity=warning queue=scenes
route scenefarm-critical alertname=ScenefarmQueueBacklog severity=critical queue=scenes
route scenefarm-warning alertname=SomethingElse
amtool config routes test --config.file=alertmanager.yml --verify.receivers=scenefarm-critical \
  alertname=ScenefarmRedisDown severity=critical >/dev/null
# Every alert links a runbook that exists.
for f in $(grep -o 'runbook_url: "[^"]*"' scenefarm.rules.yml | sed 's/runbook_url: "//; s/"$//' | sort -u); do
  [ -f "../$f" ] || { echo "missing runbook ../$f" >&2; exit 1; }
done
echo "alerts: all checks passed"
