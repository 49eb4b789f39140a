#!/usr/bin/env bash
# Captures seed inputs for the fuzz targets from a real control plane (etcd + kube-apiserver 1.20.2
# started by scripts/control-plane.sh on loopback): list pages and watch streams as the server sends
# them (JSON and protobuf), single objects in the `k8s\0` envelope, and the values kube-apiserver
# stores in etcd. Selector and kubeconfig seeds are hand-written (they come from people, not servers).
#
#   tests/fuzz/capture_corpus.sh [OUT_DIR]     default: tests/fuzz/corpus (the committed seeds)
#
# Needs curl and etcdctl (Debian's etcd-client) and scripts/provision-control-plane.sh run once.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/tests/fuzz/corpus}
work=$(mktemp -d)
trap '"$root/scripts/control-plane.sh" stop "$work" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

"$root/scripts/control-plane.sh" start "$work" --owner-pid $$ >/dev/null 2>&1
# shellcheck disable=SC1091
. "$work/env"
api() { curl -sS --fail --cacert "$CA_FILE" -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }
json_post() { api -X POST -H 'Content-Type: application/json' --data-binary "$2" "$APISERVER_URL$1" >/dev/null; }
etcd_value() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINT" get --print-value-only "$1" | head -c -1; }
readonly pb='application/vnd.kubernetes.protobuf'
readonly meta_json='application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1'
readonly pods=/api/v1/namespaces/default/pods
readonly cms=/api/v1/namespaces/default/configmaps

mkdir -p "$out"/{list_page,json_watch,protobuf_watch,protobuf_envelope,etcd_decoder}

pod() {  # name, label value
  printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":{"app":"%s","tier":"web"},
    "annotations":{"note":"caf\\u00e9 \\u2603"}},"spec":{"containers":[{"name":"c","image":"nginx:1.19",
    "ports":[{"containerPort":80}],"resources":{"limits":{"cpu":"250m","memory":"64Mi"}},
    "env":[{"name":"A","value":"1"}]}],"nodeName":"node-1","terminationGracePeriodSeconds":30}}' "$1" "$2"
}
json_post "$pods" "$(pod web-0 a)"
json_post "$pods" "$(pod web-1 b)"
json_post "$cms" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","labels":{"x":"y"}},
  "data":{"k":"v","empty":""},"binaryData":{"b":"AAEC/w=="}}'
json_post /api/v1/namespaces/default/secrets '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
  "type":"Opaque","data":{"token":"c2VjcmV0"}}'
json_post /api/v1/namespaces/default/services '{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},
  "spec":{"ports":[{"port":80,"targetPort":"http"}],"selector":{"app":"a"}}}'

# List pages: the first of two (with a continue token) and a whole one, both encodings, and
# metadata only.
api "$APISERVER_URL$pods?limit=1" >"$out/list_page/pods_page.json"
api -H "Accept: $pb" "$APISERVER_URL$pods?limit=1" >"$out/list_page/pods_page.pb"
api -H "Accept: $pb" "$APISERVER_URL$cms" >"$out/list_page/configmaps.pb"
api -H "Accept: $meta_json" "$APISERVER_URL$pods" >"$out/list_page/pods_metadata.json"
api "$APISERVER_URL/api/v1/namespaces/default/services" >"$out/list_page/services.json"

# Watch streams: from the list's resourceVersion, while objects change; bookmarks allowed.
rv=$(api "$APISERVER_URL$pods?limit=1" | sed -n 's/.*"resourceVersion":"\([0-9]*\)".*/\1/p' | head -n1)
watch="$pods?watch=1&resourceVersion=$rv&allowWatchBookmarks=true&timeoutSeconds=4"
api -N "$APISERVER_URL$watch" >"$out/json_watch/pods.jsonl" &
json_pid=$!
api -N -H "Accept: $pb;stream=watch" "$APISERVER_URL$watch" >"$out/protobuf_watch/pods.bin" &
pb_pid=$!
sleep 1
json_post "$pods" "$(pod web-2 c)"
api -X PATCH -H 'Content-Type: application/merge-patch+json' --data-binary '{"metadata":{"labels":{"app":"z"}}}' \
  "$APISERVER_URL$pods/web-0" >/dev/null
api -X DELETE "$APISERVER_URL$pods/web-1?gracePeriodSeconds=0" >/dev/null
wait "$json_pid" "$pb_pid"

# The ERROR event of an expired watch, as kube-apiserver writes it (hand-written: the watch cache
# answers an old resourceVersion with the current objects rather than 410 unless it has wrapped).
printf '%s\n' '{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 2 (201)","reason":"Expired","code":410,"details":{"retryAfterSeconds":1}}}' \
  >"$out/json_watch/expired.jsonl"

# Single objects as the server sends them in protobuf (the envelope alone).
api -H "Accept: $pb" "$APISERVER_URL$pods/web-0" >"$out/protobuf_envelope/pod.pb"
api -H "Accept: $pb" "$APISERVER_URL/api/v1/namespaces/default/services/svc" >"$out/protobuf_envelope/service.pb"

# Values as stored in etcd (k8s\0 protobuf, as the etcd sources read them).
etcd_value /registry/pods/default/web-0 >"$out/etcd_decoder/pod.pb"
etcd_value /registry/configmaps/default/cm >"$out/etcd_decoder/configmap.pb"
etcd_value /registry/secrets/default/s >"$out/protobuf_envelope/secret.pb"
# A JSON value, as the generic source (and CRDs) store them.
api "$APISERVER_URL$cms/cm" >"$out/etcd_decoder/configmap.json"

ls -l "$out"/{list_page,json_watch,protobuf_watch,protobuf_envelope,etcd_decoder}
