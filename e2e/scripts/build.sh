#!/usr/bin/env bash
# Builds the control-plane binaries (and helm, for the chart) from the pinned Go
# modules in e2e/tools and caches them under $MOLT_CACHE_DIR/bin, one file per
# name and version.
# A binary already in the cache is not rebuilt, so a second run takes seconds.
#
#   build.sh          etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                     kubectl, kwok and helm
#   build.sh capi     the Cluster API core manager, which only the Cluster API suites need
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WHAT=${1:-base}
case $WHAT in
  base | capi) ;;
  *) echo "usage: $0 [capi]" >&2; exit 2 ;;
esac

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

command -v go >/dev/null || { echo "build: the Go toolchain (go) is required" >&2; exit 1; }
mkdir -p "$BIN_DIR"

START=$SECONDS
TMP=$(mktemp -d "$BIN_DIR/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# go_build <module dir> <output name> <package> [extra go build flags...]
go_build() {
  local mod=$1 name=$2 pkg=$3; shift 3
  local dest; dest=$(bin_path "$name")
  if [[ -x $dest ]]; then
    log "build: $name cached ($dest)"
    return 0
  fi
  local t0=$SECONDS
  log "build: $name ($pkg) ..."
  (cd "$TOOLS_DIR/$mod" && go build -trimpath "$@" -o "$TMP/$name" "$pkg")
  mv -f "$TMP/$name" "$dest"
  log "build: $name done in $((SECONDS - t0))s"
}

# download_modules <what> <module dir>... : `go mod download` once, when a binary is missing.
download_modules() {
  local what=$1; shift
  log "build: downloading Go modules ($what) ..."
  local t0=$SECONDS m
  for m in "$@"; do (cd "$TOOLS_DIR/$m" && go mod download); done
  log "build: modules downloaded in $((SECONDS - t0))s"
}

# missing <binary>...: some of them is not in the cache.
missing() {
  local b
  for b in "$@"; do [[ -x $(bin_path "$b") ]] || return 0; done
  return 1
}

build_base() {
  if missing "${ALL_BINARIES[@]}"; then
    download_modules "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION" \
      kubernetes etcd kwok helm
  fi

  # Kubernetes: stamp the release version the way upstream's hack/lib/version.sh
  # does, so /version and --version report it instead of v0.0.0-master.
  local minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local k8s_ld="-s -w" p cmd
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    k8s_ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go_build kubernetes "$cmd" "k8s.io/kubernetes/cmd/$cmd" -tags selinux,notest,grpcnotrace -ldflags "$k8s_ld"
  done
  go_build etcd etcd go.etcd.io/etcd/server/v3 \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  go_build kwok kwok sigs.k8s.io/kwok/cmd/kwok -ldflags "-s -w"
  # helm: without the version stamp `helm version` reports the minor only (v4.3).
  go_build helm helm helm.sh/helm/v4/cmd/helm \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
}

# The Cluster API core manager (sigs.k8s.io/cluster-api/core), stamped with its release so
# that its log and `--version` name it.
build_capi() {
  if missing "${CAPI_BINARIES[@]}"; then
    download_modules "Cluster API $CAPI_VERSION" cluster-api
  fi
  local v=sigs.k8s.io/cluster-api/version major=${CAPI_VERSION#v} minor=${CAPI_VERSION#v*.}
  major=${major%%.*} minor=${minor%%.*}
  go_build cluster-api capi-manager sigs.k8s.io/cluster-api/core -ldflags "-s -w \
    -X $v.gitVersion=$CAPI_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor \
    -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
}

"build_$WHAT"

log "build: all binaries ready in $BIN_DIR ($((SECONDS - START))s)"
