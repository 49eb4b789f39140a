#!/usr/bin/env bash
# The demo, from a fresh Debian machine: installs what is missing, builds the Kubernetes control
# plane once (cached in ~/.cache/informer), starts a throw-away etcd + kube-apiserver on loopback,
# and runs examples/cluster_tour against them: pods created through the REST client, one informer
# through the API server and one straight from etcd holding the same objects, label queries from
# the local index next to the same query sent to the server, live changes followed by both.
#   scripts/demo.sh [PODS]     (default 2000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
"$root/scripts/provision-control-plane.sh"
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFORMER_BUILD_TESTS=OFF \
  -DINFORMER_KUBERNETES_PROTO=ON >/dev/null
cmake --build build/demo -j "$(nproc)" --target example_cluster_tour
dir=$(mktemp -d)
trap '"$root/scripts/control-plane.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
echo "starting etcd + kube-apiserver 1.20.2 on loopback..."
"$root/scripts/control-plane.sh" start "$dir" --owner-pid $$ >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
build/demo/examples/cluster_tour "$KUBECONFIG" "$ETCD_ENDPOINT" "${1:-2000}"
