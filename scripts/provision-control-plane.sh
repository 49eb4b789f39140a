#!/usr/bin/env bash
# Provisions a real Kubernetes 1.20.2 control plane for the integration tests, benchmarks and demo:
# installs etcd and the build tools from Debian, builds kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from Debian's `kubernetes` source package, and caches the binaries in
#   ${INFORMER_CACHE_DIR:-$HOME/.cache/informer}/kubernetes-1.20.2/bin/
# outside the repository and build tree, so that only the first run pays (~5-20 min on 2 cores).
#
# Idempotent: with the binaries cached and the packages installed it returns in well under a second.
# Prints the binary folder on its last line of stdout (everything else goes to stderr), so
#   bin=$(scripts/provision-control-plane.sh | tail -n1)
# works. Needs root (or sudo) only when something must be installed.
set -euo pipefail

readonly k8s_version=1.20.2
cache_dir=${INFORMER_CACHE_DIR:-$HOME/.cache/informer}
readonly cache_dir
readonly k8s_dir=$cache_dir/kubernetes-$k8s_version
readonly bin_dir=$k8s_dir/bin
readonly binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
readonly packages=(etcd-server etcd-client golang-go rsync jq golang-github-modern-go-reflect2-dev
                   openssl curl dpkg-dev)
readonly reflect2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
readonly deb_sources=/etc/apt/sources.list.d/debian.sources
readonly deb_src_sources=/etc/apt/sources.list.d/informer-deb-src.sources

log() { echo "provision-control-plane: $*" >&2; }
die() { echo "provision-control-plane: ERROR: $*" >&2; exit 1; }
trap 'echo "provision-control-plane: ERROR: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

sudo_cmd=()
if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi

binaries_present() {
  local b
  for b in "${binaries[@]}"; do [[ -x $bin_dir/$b ]] || return 1; done
}

missing_packages() {
  local installed p
  # One dpkg-query for all: the warm path stays well under a second.
  installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null \
                | awk '/ install ok installed$/ { print $1 }') || true
  for p in "${packages[@]}"; do
    grep -qx "$p" <<<"$installed" || echo "$p"
  done
}

apt_updated=0
apt_update() {
  if ((apt_updated == 0)); then
    log "apt-get update"
    "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) && return 0
  apt_update
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

# `apt-get source` needs deb-src entries: a copy of debian.sources with `Types: deb-src`, beside it.
ensure_deb_src() {
  if [[ ! -f $deb_src_sources ]]; then
    [[ -f $deb_sources ]] || die "$deb_sources not found: cannot derive deb-src entries from it"
    log "adding deb-src entries in $deb_src_sources"
    sed -E 's/^Types:[[:space:]]+deb$/Types: deb-src/' "$deb_sources" \
      | "${sudo_cmd[@]}" tee "$deb_src_sources" >/dev/null
    apt_updated=0
  fi
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    apt_updated=0
  fi
  apt_update
  apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes' \
    || die "apt does not know the source package 'kubernetes' even after adding $deb_src_sources"
}

build() {
  local scratch=$cache_dir/scratch
  rm -rf "$scratch"
  mkdir -p "$scratch"
  cd "$scratch"

  log "downloading the kubernetes source package into $scratch"
  apt-get source --download-only kubernetes >&2 || die "apt-get source --download-only kubernetes failed"
  local dscs=(kubernetes_*.dsc) dsc
  dsc=${dscs[0]}
  [[ -f $dsc ]] || die "no kubernetes_*.dsc downloaded"
  [[ $dsc == *"$k8s_version"* ]] || die "source package $dsc is not Kubernetes $k8s_version"
  log "unpacking $dsc"
  dpkg-source --no-check -x "$dsc" src >&2 || die "dpkg-source -x $dsc failed"
  cd src

  # The vendored reflect2 1.0.1 breaks under Go >= 1.18 (every JSON body with a map panics in the
  # server). Replace the whole folder with Debian's 1.0.2: overlaying files leaves duplicate symbols.
  [[ -d $reflect2_src ]] || die "$reflect2_src missing (package golang-github-modern-go-reflect2-dev)"
  [[ -d vendor/github.com/modern-go/reflect2 ]] || die "vendor/github.com/modern-go/reflect2 not in the source tree"
  rm -rf vendor/github.com/modern-go/reflect2
  cp -rL "$reflect2_src" vendor/github.com/modern-go/reflect2

  mkdir -p .go/src/k8s.io
  ln -s ../../.. .go/src/k8s.io/kubernetes
  local what="" b
  for b in "${binaries[@]}"; do what+="cmd/$b "; done
  log "building ${what}(takes several minutes; log in $scratch/build.log)"
  local start=$SECONDS
  if ! env GOPATH="$PWD/.go" GOCACHE="$scratch/go-cache" GOFLAGS= CGO_ENABLED=0 \
       make WHAT="${what% }" >"$scratch/build.log" 2>&1; then
    tail -n 40 "$scratch/build.log" >&2
    die "Kubernetes build failed; full log in $scratch/build.log (source tree kept for inspection)"
  fi
  log "build took $((SECONDS - start)) s"

  local out=_output/bin
  for b in "${binaries[@]}"; do [[ -x $out/$b ]] || die "build finished but $out/$b is missing"; done
  rm -rf "$bin_dir.tmp"
  mkdir -p "$bin_dir.tmp"
  for b in "${binaries[@]}"; do cp "$out/$b" "$bin_dir.tmp/"; done
  rm -rf "$bin_dir"
  mv "$bin_dir.tmp" "$bin_dir"

  cd "$cache_dir"
  # Go writes its module cache read-only; make it removable.
  chmod -R u+w "$scratch" 2>/dev/null || true
  rm -rf "$scratch"
}

main() {
  if binaries_present && [[ -z $(missing_packages) ]]; then
    log "already provisioned"
    echo "$bin_dir"
    return 0
  fi
  mkdir -p "$cache_dir"
  # One provisioning at a time per cache dir; a second caller waits and then finds the binaries.
  exec 9>"$cache_dir/.provision.lock"
  flock 9
  install_packages
  if binaries_present; then
    log "binaries already in $bin_dir"
  else
    ensure_deb_src
    build
  fi
  "$bin_dir/kube-apiserver" --version >&2 || die "$bin_dir/kube-apiserver does not run"
  log "binaries: $bin_dir (${binaries[*]}); etcd: $(command -v etcd)"
  echo "$bin_dir"
}

main "$@"
