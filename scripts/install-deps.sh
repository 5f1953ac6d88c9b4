#!/usr/bin/env bash
# Installs the Debian packages scenefarm builds, tests and demos with, if any is missing.
# Safe to run again: it asks apt only when something is absent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang-format
  prometheus-cpp-dev libcivetweb-dev nlohmann-json3-dev libhiredis-dev
  libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev zlib1g-dev
  libyaml-cpp-dev libcrypt-dev libssl-dev openssl
  redis-server redis-tools prometheus prometheus-alertmanager
  curl jq procps tmux python3 python3-yaml docker-compose systemd
  # the fuzz targets (scripts/fuzz.sh): clang with libFuzzer and its sanitizer runtimes
  clang libclang-rt-14-dev
  # the web pages' tests (tests/ui/): headless Chromium driven over DevTools from Python
  chromium python3-websocket
  # make images / make compose-test: podman without a daemon (runc: see
  # deploy/docker/podman/containers.conf.in), the base image from debootstrap, docker-compose
  # through podman's API, podman-compose and the Kubernetes client's schemas for the offline checks.
  podman runc netavark aardvark-dns iptables debootstrap debian-archive-keyring podman-compose
  python3-kubernetes
  # make bench and its smoke run in make test (bench/bench.py): the peers beside scenefarm
  python3-redis python3-rq prometheus-redis-exporter python3-prometheus-client
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
