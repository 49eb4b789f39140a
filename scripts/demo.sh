#!/usr/bin/env bash
# The demo, from a fresh Debian machine: installs what is missing, builds the Kubernetes control
# plane once (cached in ~/.cache/informer), starts a throw-away etcd + kube-apiserver +
# kube-controller-manager on loopback and plays examples/user_service_story against them: the
# user-service Deployment becomes a ReplicaSet and Pods, examples/mini_scheduler binds them, one
# examples/node_agent per node runs them, a rolling update, a delete, and the same objects seen
# through the API server and straight from etcd. Exit code 0 when every step checked out.
#   scripts/demo.sh             the story
#   scripts/demo.sh --tour [PODS]   examples/cluster_tour instead (PODS pods, default 2000):
#                               label queries from the local index against the server's
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=story
if [[ ${1:-} == --tour ]]; then
  mode=tour
  shift
elif (($#)); then
  echo "usage: scripts/demo.sh [--tour [PODS]]" >&2
  exit 2
fi
"$root/scripts/install-deps.sh"
"$root/scripts/provision-control-plane.sh"
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFORMER_BUILD_TESTS=OFF \
  -DINFORMER_KUBERNETES_PROTO=ON >/dev/null
if [[ $mode == story ]]; then
  targets=(example_user_service_story example_mini_scheduler example_node_agent)
else
  targets=(example_cluster_tour)
fi
cmake --build build/demo -j "$(nproc)" --target "${targets[@]}"
dir=$(mktemp -d)
trap '"$root/scripts/control-plane.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
if [[ $mode == story ]]; then
  echo "starting etcd + kube-apiserver 1.20.2 + kube-controller-manager on loopback..."
  "$root/scripts/control-plane.sh" start "$dir" --with-controller-manager --owner-pid $$ >/dev/null
  # shellcheck disable=SC1091
  . "$dir/env"
  build/demo/examples/user_service_story "$KUBECONFIG" "$ETCD_ENDPOINT"
else
  echo "starting etcd + kube-apiserver 1.20.2 on loopback..."
  "$root/scripts/control-plane.sh" start "$dir" --owner-pid $$ >/dev/null
  # shellcheck disable=SC1091
  . "$dir/env"
  build/demo/examples/cluster_tour "$KUBECONFIG" "$ETCD_ENDPOINT" "${1:-2000}"
fi
