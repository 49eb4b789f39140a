#!/usr/bin/env bash
# Provisions a real Kubernetes 1.20.2 control plane for the integration tests, benchmarks and demo:
# installs etcd and the build tools from Debian, builds kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from Debian's `kubernetes` source package, and caches the binaries in
#   ${INFORMER_CACHE_DIR:-$HOME/.cache/informer}/kubernetes-1.20.2/bin/
# outside the repository and build tree, so that only the first run pays (~5-20 min on 2 cores).
#
# From the same source package it also keeps the protobuf schemas of the built-in kinds, which the
# codec compiles in at build time (cmake/kubernetes_proto.cmake; never committed to the repository):
#   ${INFORMER_CACHE_DIR:-$HOME/.cache/informer}/kubernetes-1.20.2/proto/
#     k8s.io/api/<group>/<version>/generated.proto, k8s.io/apimachinery/pkg/.../generated.proto,
#     k8s.io/apiextensions-apiserver/..., k8s.io/kube-aggregator/..., github.com/gogo/protobuf/gogoproto/gogo.proto
#     (import paths preserved, so `protoc -I proto/` resolves every import), and
#     go-json-fields.tsv: how Go's encoding/json renders each of those messages (JSON name, omitempty,
#     inline, pointer or value), read from the Go struct tags of the same source by a small Go program.
#     The .proto files alone cannot say what JSON omits, inlines or renders as null.
# When the binaries are cached but the schemas are not (a cache from before they were kept), only
# the source package is fetched and the schemas extracted from it: no rebuild (a few seconds).
#
# Idempotent: with the binaries and schemas cached and the packages installed it returns in well
# under a second.
# Prints the binary folder on its last line of stdout (everything else goes to stderr), so
#   bin=$(scripts/provision-control-plane.sh | tail -n1)
# works. Needs root (or sudo) only when something must be installed.
set -euo pipefail

readonly k8s_version=1.20.2
cache_dir=${INFORMER_CACHE_DIR:-$HOME/.cache/informer}
readonly cache_dir
readonly k8s_dir=$cache_dir/kubernetes-$k8s_version
readonly bin_dir=$k8s_dir/bin
readonly proto_dir=$k8s_dir/proto
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

# The proto folder is moved into place complete, so its presence means all of it is there.
schemas_present() { [[ -f $proto_dir/go-json-fields.tsv ]]; }

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

# Downloads the source package into the current (empty) folder; prints the .dsc file name.
download_source() {
  log "downloading the kubernetes source package into $PWD"
  apt-get source --download-only kubernetes >&2 || die "apt-get source --download-only kubernetes failed"
  local dscs=(kubernetes_*.dsc)
  [[ -f ${dscs[0]} ]] || die "no kubernetes_*.dsc downloaded"
  [[ ${dscs[0]} == *"$k8s_version"* ]] || die "source package ${dscs[0]} is not Kubernetes $k8s_version"
  echo "${dscs[0]}"
}

# The Go program behind go-json-fields.tsv. For each package given, for each Go struct that has a
# message in the package's generated.proto, one `type` line and then, in Go field order, one
# `field` line per JSON-visible field (tab-separated):
#   group <group name> <version> <proto package>       (from `const GroupName`; "" for the core group)
#   type  <proto message> <go kind> <custom|->         (custom: has a MarshalJSON method; no fields follow)
#   field <json name|- when inlined> <proto field number|0 when not in the proto> <flags: o omitempty,
#         i inline (embedded struct without a JSON name), - none> <go kind> <proto message of the Go type|->
# go kind is encoding/json's view of the type: string int uint bool float bytes slice map ptr struct iface.
write_json_fields_tool() {
  cat >"$1" <<'GO'
package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type pkg struct {
	protoPkg, group string
	messages        map[string]bool
	types           map[string]ast.Expr
	order           []string
	custom          map[string]bool
	imports         map[*ast.File]map[string]string
	typeFile        map[string]*ast.File
}

var (
	root     string
	pkgs     = map[string]*pkg{}
	pkgRe    = regexp.MustCompile(`(?m)^package\s+([\w.]+)\s*;`)
	msgRe    = regexp.MustCompile(`(?m)^message\s+(\w+)\s*\{`)
	fail     = func(f string, a ...interface{}) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }
)

func load(path string) *pkg {
	if p, ok := pkgs[path]; ok {
		return p
	}
	dir := filepath.Join(root, path)
	parsed, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		fail("parsing %s: %v", dir, err)
	}
	p := &pkg{group: "-", messages: map[string]bool{}, types: map[string]ast.Expr{}, custom: map[string]bool{},
		imports: map[*ast.File]map[string]string{}, typeFile: map[string]*ast.File{}}
	if b, err := os.ReadFile(filepath.Join(dir, "generated.proto")); err == nil {
		if m := pkgRe.FindSubmatch(b); m != nil {
			p.protoPkg = string(m[1])
		}
		for _, m := range msgRe.FindAllSubmatch(b, -1) {
			p.messages[string(m[1])] = true
		}
	}
	for name, ap := range parsed {
		if strings.HasSuffix(name, "_test") {
			continue
		}
		files := make([]string, 0, len(ap.Files))
		for fn := range ap.Files {
			files = append(files, fn)
		}
		sort.Strings(files)
		for _, fn := range files {
			f := ap.Files[fn]
			imps := map[string]string{}
			for _, is := range f.Imports {
				ip, _ := strconv.Unquote(is.Path.Value)
				alias := ip[strings.LastIndex(ip, "/")+1:]
				if is.Name != nil {
					alias = is.Name.Name
				}
				imps[alias] = ip
			}
			p.imports[f] = imps
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							p.types[s.Name.Name] = s.Type
							p.typeFile[s.Name.Name] = f
							p.order = append(p.order, s.Name.Name)
						case *ast.ValueSpec:
							for i, n := range s.Names {
								if d.Tok == token.CONST && n.Name == "GroupName" && i < len(s.Values) {
									if bl, ok := s.Values[i].(*ast.BasicLit); ok {
										p.group, _ = strconv.Unquote(bl.Value)
									}
								}
							}
						}
					}
				case *ast.FuncDecl:
					if d.Recv != nil && d.Name.Name == "MarshalJSON" && len(d.Recv.List) == 1 {
						t := d.Recv.List[0].Type
						if st, ok := t.(*ast.StarExpr); ok {
							t = st.X
						}
						if id, ok := t.(*ast.Ident); ok {
							p.custom[id.Name] = true
						}
					}
				}
			}
		}
	}
	pkgs[path] = p
	return p
}

// target resolves a type expression naming a declared type to its package and name.
func target(p *pkg, f *ast.File, e ast.Expr) (*pkg, string) {
	switch e := e.(type) {
	case *ast.Ident:
		if _, ok := p.types[e.Name]; ok {
			return p, e.Name
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if ip, ok := p.imports[f][x.Name]; ok {
				if _, err := os.Stat(filepath.Join(root, ip)); err == nil {
					if q := load(ip); q.types[e.Sel.Name] != nil {
						return q, e.Sel.Name
					}
				}
			}
		}
	}
	return nil, ""
}

func kind(p *pkg, f *ast.File, e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return "ptr"
	case *ast.MapType:
		return "map"
	case *ast.InterfaceType:
		return "iface"
	case *ast.StructType:
		return "struct"
	case *ast.ArrayType:
		if id, ok := t.Elt.(*ast.Ident); ok && t.Len == nil && (id.Name == "byte" || id.Name == "uint8") {
			return "bytes"
		}
		return "slice"
	case *ast.Ident:
		switch t.Name {
		case "string", "bool":
			return t.Name
		case "int", "int8", "int16", "int32", "int64":
			return "int"
		case "uint", "uint8", "uint16", "uint32", "uint64", "byte", "uintptr":
			return "uint"
		case "float32", "float64":
			return "float"
		}
	case *ast.SelectorExpr:
		if x, ok := t.X.(*ast.Ident); ok && x.Name == "time" && t.Sel.Name == "Duration" {
			return "int"
		}
	}
	if q, n := target(p, f, e); q != nil {
		return kind(q, q.typeFile[n], q.types[n])
	}
	return "unknown"
}

func protoName(q *pkg, n string) string {
	if q == nil || q.protoPkg == "" {
		return "-"
	}
	return q.protoPkg + "." + n
}

func main() {
	root = os.Args[1]
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, path := range os.Args[2:] {
		p := load(path)
		if p.protoPkg == "" {
			fail("%s: no package line in generated.proto", path)
		}
		if p.group != "-" {
			fmt.Fprintf(w, "group\t%s\t%s\t%s\n", p.group, filepath.Base(path), p.protoPkg)
		}
	}
	for _, path := range os.Args[2:] {
		p := pkgs[path]
		for _, name := range p.order {
			if !p.messages[name] {
				continue
			}
			f := p.typeFile[name]
			custom := "-"
			if p.custom[name] {
				custom = "custom"
			}
			st, ok := p.types[name].(*ast.StructType)
			if !ok {
				fmt.Fprintf(w, "type\t%s\t%s\t%s\n", protoName(p, name), kind(p, f, p.types[name]), custom)
				continue
			}
			fmt.Fprintf(w, "type\t%s\tstruct\t%s\n", protoName(p, name), custom)
			if p.custom[name] {
				continue // rendered by its own MarshalJSON, which the codec mirrors by hand
			}
			for _, fld := range st.Fields.List {
				tag := ""
				if fld.Tag != nil {
					tag, _ = strconv.Unquote(fld.Tag.Value)
				}
				jsonTag, hasJSON := reflect.StructTag(tag).Lookup("json")
				if jsonTag == "-" {
					continue
				}
				opts := strings.Split(jsonTag, ",")
				flags := ""
				for _, o := range opts[1:] {
					if o == "omitempty" {
						flags = "o"
					}
				}
				number := "0"
				if pb := reflect.StructTag(tag).Get("protobuf"); pb != "" && pb != "-" {
					number = strings.Split(pb, ",")[1]
				}
				k := kind(p, f, fld.Type)
				if k == "unknown" {
					fail("%s.%s: cannot resolve the Go type of a field", path, name)
				}
				te := fld.Type
				if s, ok := te.(*ast.StarExpr); ok {
					te = s.X
				}
				q, tn := target(p, f, te)
				names := []string{}
				for _, n := range fld.Names {
					names = append(names, n.Name)
				}
				jsonName := opts[0]
				if len(names) == 0 { // embedded
					if jsonName == "" && (k == "struct" || k == "ptr") {
						flags += "i"
						jsonName = "-"
					}
					names = append(names, tn)
				}
				if flags == "" {
					flags = "-"
				}
				for _, n := range names {
					if !ast.IsExported(n) {
						continue
					}
					jn := jsonName
					if jn == "" || !hasJSON {
						jn = n
					}
					fmt.Fprintf(w, "field\t%s\t%s\t%s\t%s\t%s\n", jn, number, flags, k, protoName(q, tn))
				}
			}
		}
	}
}
GO
}

# Extracts the schemas from the source package's tarball into $proto_dir (see the header).
keep_schemas() {
  local orig=$1 work=$2
  local src=$work/kubernetes-$k8s_version/staging/src
  log "extracting the protobuf schemas from $(basename "$orig")"
  # Go sources come along: the JSON field table is read from their struct tags.
  tar -xf "$orig" -C "$work" --wildcards \
    "kubernetes-$k8s_version/staging/src/k8s.io/api/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apimachinery/pkg/api/resource/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apimachinery/pkg/apis/meta/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apimachinery/pkg/runtime/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apimachinery/pkg/util/intstr/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apimachinery/pkg/types/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/*" \
    "kubernetes-$k8s_version/staging/src/k8s.io/kube-aggregator/pkg/apis/apiregistration/*" \
    "kubernetes-$k8s_version/vendor/github.com/gogo/protobuf/gogoproto/gogo.proto" \
    || die "extracting the schemas from $orig failed"

  local go_packages=() d
  mapfile -t go_packages < <(cd "$src" && find k8s.io -name generated.proto -printf '%h\n' | sort)
  ((${#go_packages[@]} > 40)) || die "only ${#go_packages[@]} generated.proto files found in $orig"
  local tmp=$proto_dir.tmp
  rm -rf "$tmp"
  for d in "${go_packages[@]}"; do
    mkdir -p "$tmp/$d"
    cp "$src/$d/generated.proto" "$tmp/$d/"
  done
  # No 1.20 generated.proto imports it (their gogoproto options survive only as comments); kept as
  # the schema of those options, for files of other versions that do import it.
  mkdir -p "$tmp/github.com/gogo/protobuf/gogoproto"
  cp "$work/kubernetes-$k8s_version/vendor/github.com/gogo/protobuf/gogoproto/gogo.proto" \
     "$tmp/github.com/gogo/protobuf/gogoproto/"

  write_json_fields_tool "$work/json-fields.go"
  if ! env GOPATH="$work/gopath" GOCACHE="$work/go-cache" GO111MODULE=off GOFLAGS= \
       go run "$work/json-fields.go" "$src" "${go_packages[@]}" >"$tmp/go-json-fields.tsv"; then
    die "reading the JSON field table from the Go sources failed"
  fi
  rm -rf "$proto_dir"
  mv "$tmp" "$proto_dir"
  log "schemas: $proto_dir (${#go_packages[@]} packages)"
}

# The binaries are there but the schemas are not: fetch the source package, keep only the schemas.
fetch_schemas() {
  local scratch=$cache_dir/scratch-proto dsc
  rm -rf "$scratch"
  mkdir -p "$scratch"
  cd "$scratch"
  dsc=$(download_source)
  local origs=(kubernetes_*.orig.tar.*)
  [[ -f ${origs[0]} ]] || die "no kubernetes_*.orig.tar.* next to $dsc"
  keep_schemas "$scratch/${origs[0]}" "$scratch"
  cd "$cache_dir"
  chmod -R u+w "$scratch" 2>/dev/null || true
  rm -rf "$scratch"
}

build() {
  local scratch=$cache_dir/scratch dsc
  rm -rf "$scratch"
  mkdir -p "$scratch"
  cd "$scratch"
  dsc=$(download_source)
  if ! schemas_present; then
    local origs=(kubernetes_*.orig.tar.*)
    [[ -f ${origs[0]} ]] || die "no kubernetes_*.orig.tar.* next to $dsc"
    mkdir -p "$scratch/schemas"
    keep_schemas "$scratch/${origs[0]}" "$scratch/schemas"
    cd "$scratch"
  fi
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
  if binaries_present && schemas_present && [[ -z $(missing_packages) ]]; then
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
  if ! schemas_present; then
    ensure_deb_src
    fetch_schemas
  fi
  "$bin_dir/kube-apiserver" --version >&2 || die "$bin_dir/kube-apiserver does not run"
  log "binaries: $bin_dir (${binaries[*]}); etcd: $(command -v etcd)"
  echo "$bin_dir"
}

main "$@"
