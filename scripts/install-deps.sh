#!/usr/bin/env bash
# Installs the Debian packages informer builds and tests with, when they are missing.
# Idempotent: a machine that already has every package pays only a dpkg query.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-all-dev libboost-json1.81-dev
  libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  libssl-dev libyaml-cpp-dev
  clang libclang-rt-14-dev clang-format-14
  tinyproxy  # the HTTP proxy tests/integration/apiserver_proxy_live_test starts itself (not its service)
)
# Optional groups, asked for by the caller: the control plane for integration tests and the demo.
if [[ "${INFORMER_WITH_CONTROL_PLANE:-0}" == 1 ]]; then
  packages+=(etcd-server etcd-client golang-go rsync jq golang-github-modern-go-reflect2-dev openssl curl)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo_cmd=()
if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
