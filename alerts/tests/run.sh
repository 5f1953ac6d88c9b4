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
# Every alert has a runbook page, and every link is built from the one base URL.
for a in $(grep -o 'alert: [A-Za-z0-9]*' scenefarm.rules.yml | sed 's/alert: //' | sort -u); do
  [ -f "../docs/runbooks/$a.md" ] || { echo "missing runbook docs/runbooks/$a.md" >&2; exit 1; }
  grep -q "^- \[$a\]($a.md): " ../docs/runbooks/README.md ||
    { echo "docs/runbooks/README.md does not list $a" >&2; exit 1; }
done
base='{{ with query "scenefarm:runbook_base_url" }}{{ . | first | label "url" }}{{ end }}/'
alerts=$(grep -c '^      - alert: ' scenefarm.rules.yml)
links=$(grep -cF "runbook_url: '$base" scenefarm.rules.yml)
[ "$alerts" = "$links" ] || { echo "$links of $alerts alerts build runbook_url from the base" >&2; exit 1; }
# Changing that base changes every link.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's|"url", "docs/runbooks"|"url", "https://git.example.com/farm/runbooks"|' scenefarm.rules.yml > "$tmp/rules.yml"
sed -e "s|\.\./scenefarm.rules.yml|$tmp/rules.yml|" \
    -e 's|runbook_url: "docs/runbooks/|runbook_url: "https://git.example.com/farm/runbooks/|' \
    tests/scenefarm.test.yml > "$tmp/test.yml"
promtool test rules "$tmp/test.yml"
echo "alerts: all checks passed ($alerts alerts)"
