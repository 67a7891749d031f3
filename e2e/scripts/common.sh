# Shared settings for the local control plane scripts. Sourced, not run.
# Versions come from the pinned consumer modules under e2e/tools, so a
# version bump is one edit of a go.mod (plus `go mod tidy`).

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=$E2E_DIR/tools

MOLT_CACHE_DIR=${MOLT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molt}
BIN_DIR=$MOLT_CACHE_DIR/bin

# module_version <go.mod> <module path>: the version a consumer module requires.
module_version() {
  awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print ($1 == m ? $2 : $3); exit }' "$1"
}

K8S_VERSION=$(module_version "$TOOLS_DIR/kubernetes/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(module_version "$TOOLS_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(module_version "$TOOLS_DIR/kwok/go.mod" sigs.k8s.io/kwok)
HELM_VERSION=$(module_version "$TOOLS_DIR/helm/go.mod" helm.sh/helm/v4)
CAPI_VERSION=$(module_version "$TOOLS_DIR/cluster-api/go.mod" sigs.k8s.io/cluster-api)

# bin_path <name>: where the cached binary for the pinned version lives.
bin_path() {
  case "$1" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "$BIN_DIR/$1-$K8S_VERSION" ;;
    etcd) echo "$BIN_DIR/etcd-$ETCD_VERSION" ;;
    kwok) echo "$BIN_DIR/kwok-$KWOK_VERSION" ;;
    helm) echo "$BIN_DIR/helm-$HELM_VERSION" ;;
    capi-manager) echo "$BIN_DIR/capi-manager-$CAPI_VERSION" ;;
    *) echo "unknown binary $1" >&2; return 1 ;;
  esac
}

ALL_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)
# Built only when asked (`build.sh capi`): the suites on Cluster API need it, the others do not.
CAPI_BINARIES=(capi-manager)

# capi_source_dir: the pinned Cluster API module in Go's module cache (fetched when missing),
# where its CRDs (core/config/crd/bases) and webhook manifests (core/config/webhook) are.
capi_source_dir() {
  (cd "$TOOLS_DIR/cluster-api" &&
    GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go mod download -json sigs.k8s.io/cluster-api) |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
