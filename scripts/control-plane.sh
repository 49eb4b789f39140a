#!/usr/bin/env bash
# Starts and stops a throw-away Kubernetes control plane (etcd + kube-apiserver 1.20.2, optionally
# kube-controller-manager) on loopback, for integration tests, benchmarks and the demo.
# The Kubernetes binaries come from scripts/provision-control-plane.sh (run it once first).
#
# Usage:
#   control-plane.sh start DIR [options]   etcd + kube-apiserver (TLS, token auth, RBAC)
#   control-plane.sh start-etcd DIR [options]   etcd alone
#   control-plane.sh stop DIR              stops all it started, removes the etcd data; harmless twice
#   control-plane.sh restart-apiserver DIR kill + start kube-apiserver, same flags and port
#   control-plane.sh restart-etcd DIR      kill + start etcd, same flags, port and data
#   control-plane.sh start-etcd-cluster DIR [--owner-pid PID]   three etcd members (etcd-0..2)
#   control-plane.sh kill-member DIR I     SIGKILL member I (its data stays)
#   control-plane.sh restart-member DIR I  start member I again (same flags, ports and data)
#   control-plane.sh leader DIR            prints the index of the leader (members that do not
#                                          answer within a second are skipped)
# Options:
#   --with-controller-manager   also run kube-controller-manager (keeps the ServiceAccount admission
#                               plugin on: it creates the `default` ServiceAccounts)
#   --etcd-tls                  etcd serves https and requires client certificates
#   --apiserver-arg ARG         extra kube-apiserver flag (repeatable), e.g.
#                               --apiserver-arg=--max-requests-inflight=2000
#   --owner-pid PID             stop everything when process PID exits (a test that crashes or is
#                               killed leaves nothing running)
# Environment: INFORMER_K8S_BIN_DIR (default ${INFORMER_CACHE_DIR:-$HOME/.cache/informer}/kubernetes-1.20.2/bin),
#   CONTROL_PLANE_TIMEOUT (seconds to wait for health, default 60).
#
# DIR afterwards holds: env (shell-sourceable: ETCD_ENDPOINT, APISERVER_URL, ADMIN_TOKEN, USER_TOKEN,
# KUBECONFIG, CA_FILE, ADMIN_CERT/ADMIN_KEY, ETCD_CA/ETCD_CERT/ETCD_KEY with --etcd-tls, *_PID;
# for a cluster ETCD_MEMBERS, ETCD_ENDPOINTS (comma-separated), ETCD_<I>_ENDPOINT, ETCD_<I>_PID),
# kubeconfig (admin token, verifies the server against ca.crt), ca.crt, *.pid, *.log, *.args.
# Exit codes: 0 ok, 1 failure, 2 usage, 3 binaries not provisioned.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script_path=$script_dir/$(basename "${BASH_SOURCE[0]}")
readonly script_dir script_path
readonly bin_dir=${INFORMER_K8S_BIN_DIR:-${INFORMER_CACHE_DIR:-$HOME/.cache/informer}/kubernetes-1.20.2/bin}
readonly timeout=${CONTROL_PLANE_TIMEOUT:-60}

log() { echo "control-plane: $*" >&2; }
die() { echo "control-plane: ERROR: $1" >&2; exit "${2:-1}"; }
usage() {
  sed -n '6,26p' "$script_path" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- helpers ---------------------------------------------------------------------------------------

need_binary() {
  local path=$1
  [[ -x $path ]] || die "$path not found: run scripts/provision-control-plane.sh first (builds the Kubernetes 1.20.2 binaries once, ~5-20 min on 2 cores)" 3
}

# A free loopback port below the ephemeral range (so outgoing connections cannot take it meanwhile),
# not bound by anything now and not handed out earlier in this run. Sets $port_result (a
# $(free_port) subshell would lose the record of ports handed out).
declare -A taken_ports=()
port_result=""
free_port() {
  local used port hex i
  used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    printf -v hex '%04X' "$port"
    [[ -n ${taken_ports[$port]:-} ]] && continue
    grep -qx "$hex" <<<"$used" && continue
    taken_ports[$port]=1
    port_result=$port
    return 0
  done
  die "no free loopback port found"
}

# Writes KEY='value' lines; values here never contain single quotes.
env_set() {
  local key=$1 value=$2 file=$dir/env
  [[ $value != *"'"* ]] || die "internal: quote in value of $key"
  touch "$file"
  grep -v "^export $key=" "$file" >"$file.tmp" || true
  echo "export $key='$value'" >>"$file.tmp"
  mv "$file.tmp" "$file"
}

env_get() {
  local key=$1 line
  line=$(grep "^export $key=" "$dir/env" 2>/dev/null | tail -n1) || true
  line=${line#export "$key"=}
  line=${line#\'}
  echo "${line%\'}"
}

alive() {
  local pid=$1 name=${2%-[0-9]}  # cluster member etcd-I runs the binary etcd
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: the process must still be the binary we started.
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */"$name"* ]]
}

# Starts NAME (binary path BIN) with the arguments in DIR/NAME.args, in the background.
launch() {
  local name=$1 bin=$2 pid
  local -a args
  mapfile -t args <"$dir/$name.args"
  echo "=== $(date '+%F %T') starting $bin ${args[*]}" >>"$dir/$name.log"
  # etcd reads ETCD_* variables as flags and refuses to start when one duplicates a flag given
  # (e.g. after `. DIR/env`): start the servers without any.
  local -a unset_etcd=()
  local var
  for var in $(compgen -e); do [[ $var == ETCD_* ]] && unset_etcd+=(-u "$var"); done
  env "${unset_etcd[@]}" "$bin" "${args[@]}" >>"$dir/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/$name.pid"
  env_set "$(tr 'a-z-' 'A-Z_' <<<"$name")_PID" "$pid"
}

terminate() {
  local name=$1 pid i
  [[ -f $dir/$name.pid ]] || return 0
  pid=$(<"$dir/$name.pid")
  if alive "$pid" "$name"; then
    # A test may have paused it (SIGSTOP): a stopped process does not act on SIGTERM.
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" "$name" || break
      sleep 0.1
    done
    if alive "$pid" "$name"; then
      log "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.1; done
    fi
  fi
  rm -f "$dir/$name.pid"
}

fail_start() {
  local name=$1 message=$2
  {
    echo "control-plane: ERROR: $message"
    echo "---- last lines of $dir/$name.log ----"
    tail -n 30 "$dir/$name.log" 2>/dev/null || true
    echo "----"
  } >&2
  cmd_stop >/dev/null 2>&1 || true
  exit 1
}

# --- certificates ----------------------------------------------------------------------------------

# EC P-256 keys: generated in milliseconds, unlike RSA.
openssl_quiet() { openssl "$@" 2>"$dir/pki/openssl.err" || { cat "$dir/pki/openssl.err" >&2; die "openssl $1 failed"; }; }

make_ca() {
  mkdir -p "$dir/pki"
  [[ -f $dir/ca.crt ]] && return 0
  cat >"$dir/pki/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = informer-test-ca
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
EOF
  openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$dir/pki/ca.key"
  openssl_quiet req -x509 -new -config "$dir/pki/ca.cnf" -key "$dir/pki/ca.key" -days 3650 \
    -out "$dir/ca.crt"
}

# make_cert NAME CN O EKU SAN: DIR/NAME.crt and DIR/NAME.key signed by DIR/ca.crt.
make_cert() {
  local name=$1 cn=$2 org=$3 eku=$4 san=$5 subject
  subject="/CN=$cn"
  [[ -n $org ]] && subject+="/O=$org"
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $eku"
    echo "authorityKeyIdentifier = keyid"
    [[ -n $san ]] && echo "subjectAltName = $san"
  } >"$dir/pki/$name.ext"
  openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key.ec"
  # PKCS#8, which every client library reads.
  openssl_quiet pkcs8 -topk8 -nocrypt -in "$dir/$name.key.ec" -out "$dir/$name.key"
  rm -f "$dir/$name.key.ec"
  openssl_quiet req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/pki/$name.csr"
  openssl_quiet x509 -req -in "$dir/pki/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$dir/pki/$name.ext" -out "$dir/$name.crt"
}

# --- etcd ------------------------------------------------------------------------------------------

etcd_healthy() {
  local -a tls=()
  if [[ $(env_get ETCD_TLS) == 1 ]]; then
    tls=(--cacert "$dir/ca.crt" --cert "$dir/etcd-client.crt" --key "$dir/etcd-client.key")
  fi
  curl -fsS --max-time 2 "${tls[@]}" "$(env_get ETCD_ENDPOINT)/health" 2>/dev/null | grep -q '"health":"true"'
}

wait_etcd() {
  local deadline=$((SECONDS + timeout)) pid
  pid=$(<"$dir/etcd.pid")
  until etcd_healthy; do
    alive "$pid" etcd || return 1
    ((SECONDS < deadline)) || fail_start etcd "etcd not healthy after ${timeout} s"
    sleep 0.1
  done
}

start_etcd() {
  local etcd_tls=$1 data_dir scheme=http client_port peer_port
  local etcd_bin
  etcd_bin=$(command -v etcd) || die "etcd not installed: run scripts/provision-control-plane.sh" 3
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    data_dir=$(mktemp -d /dev/shm/informer-etcd-XXXXXXXX)
  else
    data_dir=$(mktemp -d "$dir/etcd-data-XXXXXXXX")
  fi
  env_set ETCD_DATA "$data_dir"
  env_set ETCD_TLS "$etcd_tls"
  if [[ $etcd_tls == 1 ]]; then
    scheme=https
    make_ca
    make_cert etcd-server localhost "" serverAuth "IP:127.0.0.1,DNS:localhost"
    make_cert etcd-client informer-etcd-client "" clientAuth ""
    env_set ETCD_CA "$dir/ca.crt"
    env_set ETCD_CERT "$dir/etcd-client.crt"
    env_set ETCD_KEY "$dir/etcd-client.key"
  fi
  # A port picked free can be taken before etcd binds it: retry with new ports.
  for _ in 1 2 3; do
    free_port; client_port=$port_result
    free_port; peer_port=$port_result
    local client_url=$scheme://127.0.0.1:$client_port peer_url=http://127.0.0.1:$peer_port
    {
      printf '%s\n' --name=informer "--data-dir=$data_dir" \
        "--listen-client-urls=$client_url" "--advertise-client-urls=$client_url" \
        "--listen-peer-urls=$peer_url" "--initial-advertise-peer-urls=$peer_url" \
        "--initial-cluster=informer=$peer_url" --initial-cluster-state=new \
        --logger=zap --log-outputs=stderr \
        --heartbeat-interval=10 --election-timeout=100
      if [[ $etcd_tls == 1 ]]; then
        printf '%s\n' --client-cert-auth "--trusted-ca-file=$dir/ca.crt" \
          "--cert-file=$dir/etcd-server.crt" "--key-file=$dir/etcd-server.key"
      fi
    } >"$dir/etcd.args"
    env_set ETCD_ENDPOINT "$client_url"
    launch etcd "$etcd_bin"
    wait_etcd && return 0
    grep -q "address already in use" "$dir/etcd.log" || fail_start etcd "etcd exited during start"
    log "etcd port clash, retrying with other ports"
    rm -rf "${data_dir:?}"/*
  done
  fail_start etcd "etcd could not bind a free port in 3 attempts"
}

# --- a three-member etcd cluster -------------------------------------------------------------------
# Members etcd-0..etcd-2 on loopback, plain http, each with its own ports and data dir (on /dev/shm
# when possible). Raft timing is slower than the single etcd's (heartbeat 50 ms, election 500 ms) so
# that a loaded 2-core machine does not elect a new leader by accident; a member cut from its peers
# notices it within an election timeout.
readonly cluster_members=3

member_endpoint() { env_get "ETCD_$1_ENDPOINT"; }

member_healthy() {
  curl -fsS --max-time 2 "$(member_endpoint "$1")/health" 2>/dev/null | grep -q '"health":"true"'
}

wait_member() {
  local i=$1 deadline=$((SECONDS + timeout)) pid
  pid=$(<"$dir/etcd-$i.pid")
  until member_healthy "$i"; do
    alive "$pid" "etcd-$i" || fail_start "etcd-$i" "etcd-$i exited during start"
    ((SECONDS < deadline)) || fail_start "etcd-$i" "etcd-$i not healthy after ${timeout} s"
    sleep 0.1
  done
}

start_etcd_cluster() {
  local etcd_bin i initial="" endpoints="" data_dir
  local -a client_urls peer_urls
  etcd_bin=$(command -v etcd) || die "etcd not installed: run scripts/provision-control-plane.sh" 3
  for ((i = 0; i < cluster_members; i++)); do
    free_port; client_urls[i]=http://127.0.0.1:$port_result
    free_port; peer_urls[i]=http://127.0.0.1:$port_result
    initial+="${initial:+,}etcd-$i=${peer_urls[i]}"
    endpoints+="${endpoints:+,}${client_urls[i]}"
  done
  env_set ETCD_MEMBERS "$cluster_members"
  env_set ETCD_ENDPOINTS "$endpoints"
  env_set ETCD_ENDPOINT "${client_urls[0]}"
  for ((i = 0; i < cluster_members; i++)); do
    if [[ -d /dev/shm && -w /dev/shm ]]; then
      data_dir=$(mktemp -d /dev/shm/informer-etcd-XXXXXXXX)
    else
      data_dir=$(mktemp -d "$dir/etcd-data-XXXXXXXX")
    fi
    env_set "ETCD_${i}_DATA" "$data_dir"
    env_set "ETCD_${i}_ENDPOINT" "${client_urls[i]}"
    printf '%s\n' "--name=etcd-$i" "--data-dir=$data_dir" \
      "--listen-client-urls=${client_urls[i]}" "--advertise-client-urls=${client_urls[i]}" \
      "--listen-peer-urls=${peer_urls[i]}" "--initial-advertise-peer-urls=${peer_urls[i]}" \
      "--initial-cluster=$initial" --initial-cluster-state=new --initial-cluster-token=informer-test \
      --logger=zap --log-outputs=stderr --heartbeat-interval=50 --election-timeout=500 \
      >"$dir/etcd-$i.args"
    launch "etcd-$i" "$etcd_bin"
  done
  # No member is healthy before a quorum has started and elected a leader.
  for ((i = 0; i < cluster_members; i++)); do wait_member "$i"; done
}

need_member() {
  [[ $1 =~ ^[0-9]+$ && -f $dir/etcd-$1.args ]] || die "no cluster member $1 was started in $dir"
}

cmd_kill_member() {
  local i=$1 pid
  need_member "$i"
  [[ -f $dir/etcd-$i.pid ]] || return 0
  pid=$(<"$dir/etcd-$i.pid")
  if alive "$pid" "etcd-$i"; then
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid" "etcd-$i"; do sleep 0.05; done
  fi
  rm -f "$dir/etcd-$i.pid"
  env_set "ETCD_${i}_PID" ""  # so that nobody signals a recycled pid
}

cmd_restart_member() {
  local i=$1
  need_member "$i"
  cmd_kill_member "$i"
  launch "etcd-$i" "$(command -v etcd)"
  wait_member "$i"
  log "etcd-$i restarted at $(member_endpoint "$i")"
}

# The member's id and the leader's id it knows, as "ID LEADER" (decimal), from the gRPC gateway.
member_status() {
  curl -fsS --max-time 1 -X POST -d '{}' "$(member_endpoint "$1")/v3/maintenance/status" 2>/dev/null |
    jq -r '"\(.header.member_id) \(.leader // "0")"'
}

cmd_leader() {
  local members i status leader=""
  local -a ids=()
  members=$(env_get ETCD_MEMBERS)
  [[ -n $members ]] || die "no etcd cluster was started in $dir"
  for ((i = 0; i < members; i++)); do
    status=$(member_status "$i") || continue
    ids[i]=${status% *}
    [[ ${status#* } != 0 ]] && leader=${status#* }
  done
  [[ -n $leader ]] || die "no member knows a leader"
  for ((i = 0; i < members; i++)); do
    [[ ${ids[i]:-} == "$leader" ]] && { echo "$i"; return 0; }
  done
  die "the leader $leader is not among the members that answered"
}

# --- kube-apiserver --------------------------------------------------------------------------------

apiserver_get() {
  curl -sS --max-time 5 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(env_get ADMIN_TOKEN)" \
    -o /dev/null -w '%{http_code}' "$(env_get APISERVER_URL)$1" 2>/dev/null || true
}

wait_apiserver() {
  local deadline=$((SECONDS + timeout)) pid
  pid=$(<"$dir/kube-apiserver.pid")
  until [[ $(apiserver_get /healthz) == 200 ]]; do
    alive "$pid" kube-apiserver || return 1
    ((SECONDS < deadline)) || fail_start kube-apiserver "kube-apiserver not healthy after ${timeout} s"
    sleep 0.25
  done
  # The bootstrap controller creates the `default` namespace just after /healthz turns ok.
  until [[ $(apiserver_get /api/v1/namespaces/default) == 200 ]]; do
    ((SECONDS < deadline)) || fail_start kube-apiserver "namespace default missing after ${timeout} s"
    sleep 0.1
  done
}

write_kubeconfig() {
  local ca_data
  ca_data=$(base64 -w0 <"$dir/ca.crt")
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: informer
  cluster:
    server: $(env_get APISERVER_URL)
    certificate-authority-data: $ca_data
users:
- name: admin
  user:
    token: $(env_get ADMIN_TOKEN)
- name: user
  user:
    token: $(env_get USER_TOKEN)
contexts:
- name: admin
  context:
    cluster: informer
    user: admin
- name: user
  context:
    cluster: informer
    user: user
current-context: admin
EOF
  chmod 600 "$dir/kubeconfig"
  env_set KUBECONFIG "$dir/kubeconfig"
}

start_apiserver() {
  local with_cm=$1 port _
  shift
  local -a extra=("$@")
  make_ca
  make_cert apiserver localhost "" serverAuth \
    "IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  make_cert admin admin system:masters clientAuth ""
  openssl_quiet genrsa -out "$dir/pki/sa.key" 2048
  openssl_quiet rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub"
  local admin_token user_token
  admin_token=$(openssl rand -hex 16)
  user_token=$(openssl rand -hex 16)
  printf '%s\n' "$admin_token,admin,admin-uid,\"system:masters\"" \
    "$user_token,informer-user,informer-user-uid" >"$dir/pki/tokens.csv"
  env_set ADMIN_TOKEN "$admin_token"
  env_set USER_TOKEN "$user_token"
  env_set ADMIN_CERT "$dir/admin.crt"
  env_set ADMIN_KEY "$dir/admin.key"
  env_set CA_FILE "$dir/ca.crt"

  for _ in 1 2 3; do
    free_port; port=$port_result
    env_set APISERVER_URL "https://127.0.0.1:$port"
    {
      printf '%s\n' "--etcd-servers=$(env_get ETCD_ENDPOINT)" "--secure-port=$port" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
        "--tls-cert-file=$dir/apiserver.crt" "--tls-private-key-file=$dir/apiserver.key" \
        "--client-ca-file=$dir/ca.crt" "--token-auth-file=$dir/pki/tokens.csv" \
        --authorization-mode=RBAC \
        "--service-account-key-file=$dir/pki/sa.pub" "--service-account-signing-key-file=$dir/pki/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.0.0.0/24
      if [[ $(env_get ETCD_TLS) == 1 ]]; then
        printf '%s\n' "--etcd-cafile=$dir/ca.crt" "--etcd-certfile=$dir/etcd-client.crt" \
          "--etcd-keyfile=$dir/etcd-client.key"
      fi
      [[ $with_cm == 1 ]] || echo --disable-admission-plugins=ServiceAccount
      ((${#extra[@]} == 0)) || printf '%s\n' "${extra[@]}"
    } >"$dir/kube-apiserver.args"
    write_kubeconfig
    launch kube-apiserver "$bin_dir/kube-apiserver"
    wait_apiserver && return 0
    grep -q "address already in use" "$dir/kube-apiserver.log" \
      || fail_start kube-apiserver "kube-apiserver exited during start"
    log "kube-apiserver port clash, retrying with another port"
  done
  fail_start kube-apiserver "kube-apiserver could not bind a free port in 3 attempts"
}

start_controller_manager() {
  printf '%s\n' "--kubeconfig=$dir/kubeconfig" "--service-account-private-key-file=$dir/pki/sa.key" \
    "--root-ca-file=$dir/ca.crt" --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    >"$dir/kube-controller-manager.args"
  launch kube-controller-manager "$bin_dir/kube-controller-manager"
  sleep 0.5
  alive "$(<"$dir/kube-controller-manager.pid")" kube-controller-manager \
    || fail_start kube-controller-manager "kube-controller-manager exited during start"
}

# Stops everything once the owner process is gone (a crashed or killed test leaves nothing behind).
start_watchdog() {
  local owner=$1
  kill -0 "$owner" 2>/dev/null || die "--owner-pid $owner: no such process"
  # shellcheck disable=SC2016 # expanded by the watchdog's own bash
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" stop "$3"' \
    watchdog "$owner" "$script_path" "$dir" >>"$dir/watchdog.log" 2>&1 </dev/null &
  echo $! >"$dir/watchdog.pid"
}

# --- commands --------------------------------------------------------------------------------------

cmd_start() {
  local mode=$1 with_cm=0 etcd_tls=0 owner=""
  local -a extra=()
  shift
  while (($#)); do
    case $1 in
      --with-controller-manager) with_cm=1 ;;
      --etcd-tls) etcd_tls=1 ;;
      --apiserver-arg) (($# >= 2)) || usage; extra+=("$2"); shift ;;
      --apiserver-arg=*) extra+=("${1#--apiserver-arg=}") ;;
      --owner-pid) (($# >= 2)) || usage; owner=$2; shift ;;
      --owner-pid=*) owner=${1#--owner-pid=} ;;
      *) log "unknown option $1"; usage ;;
    esac
    shift
  done
  if [[ $mode == cluster && ($etcd_tls == 1 || $with_cm == 1 || ${#extra[@]} -gt 0) ]]; then
    die "start-etcd-cluster takes only --owner-pid" 2
  fi
  if [[ $mode == full ]]; then
    need_binary "$bin_dir/kube-apiserver"
    [[ $with_cm == 0 ]] || need_binary "$bin_dir/kube-controller-manager"
  fi
  command -v etcd >/dev/null || die "etcd not installed: run scripts/provision-control-plane.sh" 3
  if { [[ -f $dir/etcd.pid ]] && alive "$(<"$dir/etcd.pid")" etcd; } ||
    { [[ -f $dir/etcd-0.pid ]] && alive "$(<"$dir/etcd-0.pid")" etcd-0; }; then
    die "a control plane already runs in $dir: stop it first"
  fi
  mkdir -p "$dir"
  rm -f "$dir/env"
  env_set CONTROL_PLANE_DIR "$dir"
  env_set K8S_BIN_DIR "$bin_dir"
  [[ -z $owner ]] || start_watchdog "$owner"
  local t0=$SECONDS
  if [[ $mode == cluster ]]; then
    start_etcd_cluster
    log "etcd cluster $(env_get ETCD_ENDPOINTS) ready"
    return 0
  fi
  start_etcd "$etcd_tls"
  if [[ $mode == full ]]; then
    start_apiserver "$with_cm" "${extra[@]}"
    [[ $with_cm == 0 ]] || start_controller_manager
    log "kube-apiserver $(env_get APISERVER_URL) ready in $((SECONDS - t0)) s; etcd $(env_get ETCD_ENDPOINT)"
  else
    log "etcd $(env_get ETCD_ENDPOINT) ready"
  fi
  log "source $dir/env for the endpoints and tokens"
}

cmd_stop() {
  [[ -d $dir ]] || return 0
  local name data_dir watchdog
  for name in kube-controller-manager kube-apiserver etcd etcd-0 etcd-1 etcd-2; do terminate "$name"; done
  for name in ETCD_DATA ETCD_0_DATA ETCD_1_DATA ETCD_2_DATA; do
    data_dir=$(env_get "$name")
    # Only ever remove what start created.
    if [[ $data_dir == /dev/shm/informer-etcd-* || $data_dir == "$dir"/etcd-data-* ]]; then
      rm -rf "$data_dir"
    fi
  done
  if [[ -f $dir/watchdog.pid ]]; then
    watchdog=$(<"$dir/watchdog.pid")
    # The watchdog itself ends by exec'ing this stop: do not kill ourselves.
    if [[ $watchdog != "$$" ]]; then kill -TERM "$watchdog" 2>/dev/null || true; fi
    rm -f "$dir/watchdog.pid"
  fi
}

cmd_restart_etcd() {
  [[ -f $dir/etcd.args ]] || die "no etcd was started in $dir"
  terminate etcd
  launch etcd "$(command -v etcd)"
  wait_etcd || fail_start etcd "etcd exited during restart"
  log "etcd restarted at $(env_get ETCD_ENDPOINT)"
}

cmd_restart_apiserver() {
  [[ -f $dir/kube-apiserver.args ]] || die "no kube-apiserver was started in $dir"
  need_binary "$bin_dir/kube-apiserver"
  terminate kube-apiserver
  launch kube-apiserver "$bin_dir/kube-apiserver"
  wait_apiserver || fail_start kube-apiserver "kube-apiserver exited during restart"
  log "kube-apiserver restarted at $(env_get APISERVER_URL)"
}

(($# >= 2)) || usage
command=$1
dir=$2
shift 2
[[ $dir == /* ]] || dir=$PWD/$dir
case $command in
  start) cmd_start full "$@" ;;
  start-etcd) cmd_start etcd "$@" ;;
  start-etcd-cluster) cmd_start cluster "$@" ;;
  kill-member) (($# == 1)) || usage; cmd_kill_member "$1" ;;
  restart-member) (($# == 1)) || usage; cmd_restart_member "$1" ;;
  leader) cmd_leader ;;
  stop) cmd_stop ;;
  restart-etcd) cmd_restart_etcd ;;
  restart-apiserver) cmd_restart_apiserver ;;
  *) usage ;;
esac
