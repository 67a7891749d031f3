#!/usr/bin/env bash
# Builds the control-plane binaries (and helm, for the chart) from the pinned Go
# modules in e2e/tools and caches them under $MOLT_CACHE_DIR/bin, one file per
# name and version.
# A binary already in the cache is not rebuilt, so a second run takes seconds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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

missing=0
for b in "${ALL_BINARIES[@]}"; do [[ -x $(bin_path "$b") ]] || missing=1; done
if ((missing)); then
  log "build: downloading Go modules (Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION) ..."
  t0=$SECONDS
  for m in kubernetes etcd kwok helm; do (cd "$TOOLS_DIR/$m" && go mod download); done
  log "build: modules downloaded in $((SECONDS - t0))s"
fi

# Kubernetes: stamp the release version the way upstream's hack/lib/version.sh
# does, so /version and --version report it instead of v0.0.0-master.
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
major=${K8S_VERSION#v}; major=${major%%.*}
k8s_ld="-s -w"
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

log "build: all binaries ready in $BIN_DIR ($((SECONDS - START))s)"
