#!/usr/bin/env bash
# Local Kubernetes control plane for molt's end-to-end tests and demos.
#
#   e2e/cluster.sh build    build (or reuse) the pinned binaries, see e2e/scripts/build.sh
#   e2e/cluster.sh up       start etcd, kube-apiserver, kube-controller-manager,
#                           kube-scheduler, kwok and the fault mirror on 127.0.0.1;
#                           returns once the cluster is usable. Refuses while a cluster
#                           of this state directory runs, unless given --replace
#                           (or MOLT_CLUSTER_REPLACE=1), which stops it and wipes its state
#   e2e/cluster.sh ensure   `up` unless a healthy cluster is already running
#   e2e/cluster.sh down     stop exactly the processes `up` started, remove the state
#   e2e/cluster.sh status   show the recorded processes and whether they run
#   e2e/cluster.sh env      print `export KUBECONFIG=...` for the running cluster
#   e2e/cluster.sh build capi      build (or reuse) the Cluster API manager
#   e2e/cluster.sh capi-up  on the running cluster: install Cluster API's CRDs and
#                           webhooks, start its manager and the kwok-machine provider;
#                           nothing to do when they run. Only the Cluster API suites need it
#   e2e/cluster.sh capi-down       stop them and remove their webhooks (`down` stops them too)
#
# State (PKI, kubeconfig, etcd data, pid files, one log per component) lives in
# $MOLT_CLUSTER_DIR (default: <repo>/target/e2e-cluster). Ports are fixed on
# loopback and can be moved with MOLT_*_PORT variables (see below).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/common.sh"

REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
STATE=${MOLT_CLUSTER_DIR:-$REPO_DIR/target/e2e-cluster}
ETCD_PORT=${MOLT_ETCD_PORT:-23790}
ETCD_PEER_PORT=${MOLT_ETCD_PEER_PORT:-23800}
API_PORT=${MOLT_APISERVER_PORT:-26443}
KCM_PORT=${MOLT_KCM_PORT:-20257}
SCHED_PORT=${MOLT_SCHEDULER_PORT:-20259}
KWOK_PORT=${MOLT_KWOK_PORT:-20247}
CAPI_WEBHOOK_PORT=${MOLT_CAPI_WEBHOOK_PORT:-29443}
CAPI_HEALTH_PORT=${MOLT_CAPI_HEALTH_PORT:-29440}
CAPI_DIAGNOSTICS_PORT=${MOLT_CAPI_DIAGNOSTICS_PORT:-29441}
WAIT_SECONDS=${MOLT_CLUSTER_WAIT_SECONDS:-180}

# Components in start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok fault-mirror)
# Started by `capi-up` on a running cluster, stopped before the others.
CAPI_COMPONENTS=(capi-manager kwok-machine)
ALL_COMPONENTS=("${COMPONENTS[@]}" "${CAPI_COMPONENTS[@]}")
# The webhook configurations capi-up registers.
CAPI_WEBHOOKS=(mutatingwebhookconfiguration/molt-e2e-capi-mutating
  validatingwebhookconfiguration/molt-e2e-capi-validating)

# While starting: how to undo a failed start (stop_all, or stop_capi for capi-up).
STARTING=
die() {
  log "cluster: $*"
  if [[ -n $STARTING ]]; then
    log "cluster: stopping what was started; logs stay in $STATE/logs until the next up/down"
    $STARTING || true
  fi
  exit 1
}

# ---------------------------------------------------------------- processes

# proc_start <pid>: the process's start time in clock ticks since boot, empty
# for a process that is gone or a zombie. Together with the PID it identifies
# a process for good: a recycled PID comes with another start time.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  # fields after the command name: state ppid ... starttime is the 20th
  set -- $stat
  [[ $1 != Z ]] && echo "${20}"
}

# pid_alive <name>: the process recorded for <name> still runs.
pid_alive() {
  local f=$STATE/pids/$1 pid start
  [[ -f $f ]] || return 1
  read -r pid start _ <"$f" || return 1
  [[ -n $pid && -n $start ]] || return 1
  [[ $(proc_start "$pid") == "$start" ]]
}

stop_one() {
  local name=$1 pid
  pid_alive "$name" || return 0
  read -r pid _ <"$STATE/pids/$name"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do
    pid_alive "$name" || return 0
    sleep 0.1
  done
  log "cluster: $name (pid $pid) ignored SIGTERM, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    pid_alive "$name" || return 0
    sleep 0.1
  done
  return 1
}

# stop_each <name>...: stop them in reverse order.
stop_each() {
  local names=("$@") i failed=0
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    stop_one "${names[i]}" || failed=1
  done
  return $failed
}

stop_all() { stop_each "${ALL_COMPONENTS[@]}"; }

# start <name> <executable> [args...]: run in the background, log to logs/<name>.log.
start() {
  local name=$1 exe; exe=$(readlink -f "$2"); shift 2
  "$exe" "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid $(proc_start "$pid") $exe" >"$STATE/pids/$name"
}

# wait_for <what> <command...>: retry a check until it passes, failing loudly
# (with the component's log tail) once the deadline is over.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    for c in "${ALL_COMPONENTS[@]}"; do
      if [[ -f $STATE/pids/$c ]] && ! pid_alive "$c"; then
        tail -n 30 "$STATE/logs/$c.log" >&2 || true
        die "$c exited while waiting for $what (log: $STATE/logs/$c.log)"
      fi
    done
    ((SECONDS < deadline)) || die "timed out after ${WAIT_SECONDS}s waiting for $what"
    sleep 0.2
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- PKI

# sign <name> <subject> <extensions>: key + certificate signed by the cluster CA.
sign() {
  local p=$STATE/pki
  openssl req -new -newkey rsa:2048 -nodes -keyout "$p/$1.key" -out "$p/$1.csr" -subj "$2" 2>/dev/null
  printf '%b\n' "$3" >"$p/$1.ext"
  openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -out "$p/$1.crt" -days 365 -sha256 -extfile "$p/$1.ext" 2>/dev/null
}

make_pki() {
  local p=$STATE/pki
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" \
    -days 365 -sha256 -subj "/CN=molt-e2e-ca" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1"
  # Cluster admin: in system:masters, used by the control-plane components,
  # kwok, the fault mirror and the tests' admin client.
  sign admin "/O=system:masters/CN=molt-e2e-admin" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  # Front proxy identity of the API server (aggregation); KCM and scheduler
  # read its CA from the extension-apiserver-authentication ConfigMap.
  sign front-proxy "/CN=front-proxy-client" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
  # kwok serves kubelet-like endpoints on its own port.
  sign kwok "/CN=kwok" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1"
  # ServiceAccount token signing key pair.
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  rm -f "$p"/*.csr "$p"/*.ext
  chmod 600 "$p"/*.key

  cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: molt-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $p/ca.crt
users:
- name: molt-e2e-admin
  user:
    client-certificate: $p/admin.crt
    client-key: $p/admin.key
contexts:
- name: molt-e2e
  context:
    cluster: molt-e2e
    user: molt-e2e-admin
current-context: molt-e2e
EOF
}

# ---------------------------------------------------------------- checks

api() { curl -fsS --max-time 5 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" \
  --key "$STATE/pki/admin.key" "https://127.0.0.1:$API_PORT$1"; }
kc() { "$(bin_path kubectl)" --kubeconfig="$STATE/kubeconfig" "$@"; }

# ---------------------------------------------------------------- commands

# harness_bin <name>: one of the harness's controllers (fault-mirror, kwok-machine), built by
# `cargo run`, which then has the binary say where it is.
harness_bin() {
  command -v cargo >/dev/null || die "cargo is required to build $1"
  local out
  out=$(cd "$REPO_DIR" && cargo run --quiet -p molt-e2e --bin "$1" -- --print-path) || out=
  [[ -n $out && -x $out ]] || die "could not build $1 (cargo build -p molt-e2e --bin $1)"
  echo "$out"
}

cmd_build() {
  bash "$E2E_DIR/scripts/build.sh" "$@"
}

# lock: one up/ensure/down at a time (the harness may call `ensure` from
# several test processes).
lock() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock 9
}

# any_alive: some process the state directory records still runs.
any_alive() {
  local c
  for c in "${ALL_COMPONENTS[@]}"; do pid_alive "$c" && return 0; done
  return 1
}

# up [--replace]: a running cluster may be someone's `make cluster-up`; only --replace
# (what e2e/scripts/test.sh passes) stops it. Leftovers of a run whose processes are all
# gone are cleaned up either way.
cmd_up() {
  local replace=${MOLT_CLUSTER_REPLACE:-0}
  case "${1:-}" in
    --replace) replace=1 ;;
    "") ;;
    *) echo "usage: $0 up [--replace]" >&2; exit 2 ;;
  esac
  lock
  if [[ -d $STATE ]] && any_alive; then
    if [[ $replace == 1 ]]; then
      log "cluster: --replace: stopping the cluster running from $STATE and wiping its state"
    elif cluster_healthy; then
      die "a cluster from this checkout is already running and healthy" \
        "(export KUBECONFIG=$STATE/kubeconfig). To use it, run nothing: tests and" \
        "\`make demo\` reuse it. To start afresh, run \`make cluster-down\` first" \
        "(or \`e2e/cluster.sh up --replace\`)."
    else
      die "a cluster from this checkout is partly running (\`e2e/cluster.sh status\`" \
        "shows which processes). Run \`make cluster-down\` first" \
        "(or \`e2e/cluster.sh up --replace\`)."
    fi
  fi
  do_up
}

do_up() {
  local t0=$SECONDS
  command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"
  command -v curl >/dev/null || die "curl is required (apt-get install curl)"

  # Leftovers of an earlier run (crashed or never stopped): stop what it
  # recorded, then start from a clean state directory.
  if [[ -d $STATE ]]; then
    log "cluster: cleaning up the previous state in $STATE"
    stop_all || die "could not stop the processes of the previous run"
    rm -rf "$STATE"
  fi

  for b in "${ALL_BINARIES[@]}"; do
    [[ -x $(bin_path "$b") ]] || cmd_build
  done
  local mirror=${MOLT_FAULT_MIRROR_BIN:-}
  [[ -n $mirror ]] || mirror=$(harness_bin fault-mirror)

  for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT"; do
    port_free "$port" || die "port 127.0.0.1:$port is in use by another process"
  done

  mkdir -p "$STATE"/{logs,pids,etcd}
  chmod 700 "$STATE/etcd"
  STARTING=stop_all
  trap 'die "interrupted"' INT TERM
  make_pki
  local p=$STATE/pki k=$STATE/kubeconfig
  # Audit log of pod deletions and evictions, and of every write a ServiceAccount
  # makes: the e2e invariant checker reads it to prove that pods leave nodes only
  # through the Eviction API, and the failover test to prove that a replica that
  # lost the leader Lease writes nothing.
  cat >"$STATE/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create]
    resources: [{group: "", resources: [pods/eviction]}]
  - level: Metadata
    verbs: [delete, deletecollection]
    resources: [{group: "", resources: [pods]}]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
    userGroups: ["system:serviceaccounts"]
  - level: None
POLICY

  log "cluster: starting etcd"
  start etcd "$(bin_path etcd)" \
    --name=molt-e2e --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="molt-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls="" \
    --auto-compaction-retention=1 --quota-backend-bytes=2147483648 \
    --unsafe-no-fsync=true --log-level=warn
  wait_for "etcd" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/readyz"

  log "cluster: starting kube-apiserver"
  start kube-apiserver "$(bin_path kube-apiserver)" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --etcd-prefix=/registry \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" \
    --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --requestheader-client-ca-file="$p/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$p/front-proxy.crt" --proxy-client-key-file="$p/front-proxy.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --max-requests-inflight=0 --max-mutating-requests-inflight=0 --enable-priority-and-fairness=false \
    --audit-policy-file="$STATE/audit-policy.yaml" --audit-log-path="$STATE/logs/audit.log" \
    --audit-log-mode=blocking --audit-log-format=json
  wait_for "kube-apiserver /readyz" api /readyz

  log "cluster: starting kube-controller-manager, kube-scheduler, kwok, fault-mirror"
  start kube-controller-manager "$(bin_path kube-controller-manager)" \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --root-ca-file="$p/ca.crt" --service-account-private-key-file="$p/sa.key" \
    --kube-api-qps=500 --kube-api-burst=1000
  # A pod found unschedulable waits for a cluster event to be tried again; when the event
  # that frees room (a fresh node losing its not-ready taint) is not one the scheduler
  # requeues on, it waits up to 5 minutes, longer than the tests' drain timeouts. Retry such
  # pods within about half a minute instead (the scheduler flushes every 30 s).
  start kube-scheduler "$(bin_path kube-scheduler)" \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
    --kube-api-qps=500 --kube-api-burst=1000 --pod-max-in-unschedulable-pods-duration=10s
  start kwok "$(bin_path kwok)" \
    --kubeconfig="$k" --config="$E2E_DIR/kwok/stages.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.0.0.0/16 \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$p/kwok.crt" --tls-private-key-file="$p/kwok.key"
  KUBECONFIG=$k RUST_LOG=${RUST_LOG:-info} start fault-mirror "$mirror" --ready-file "$STATE/fault-mirror.ready"

  wait_for "kube-controller-manager /healthz" curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for "kube-scheduler /healthz" curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
  wait_for "kwok /healthz" curl -fsSk --max-time 2 "https://127.0.0.1:$KWOK_PORT/healthz"
  wait_for "the fault mirror" test -f "$STATE/fault-mirror.ready"

  # Usable means: the API answers for nodes, the service-account and root-CA
  # controllers have populated the default namespace, and RBAC bootstrap is done.
  wait_for "the nodes API" kc get nodes
  wait_for "the default ServiceAccount" kc -n default get serviceaccount default
  wait_for "the kube-root-ca.crt ConfigMap" kc -n default get configmap kube-root-ca.crt
  wait_for "RBAC bootstrap roles" kc get clusterrole system:node

  STARTING=
  trap - INT TERM
  log "cluster: up in $((SECONDS - t0))s: $(api /version | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p')" \
    "on https://127.0.0.1:$API_PORT"
  log "cluster: export KUBECONFIG=$k   (logs in $STATE/logs)"
}

cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  api /readyz >/dev/null 2>&1
}

cmd_ensure() {
  lock
  if [[ -d $STATE ]] && cluster_healthy; then
    log "cluster: already running (export KUBECONFIG=$STATE/kubeconfig)"
    return 0
  fi
  do_up
}

cmd_down() {
  lock
  if [[ ! -d $STATE ]]; then
    log "cluster: not running (no state in $STATE)"
    return 0
  fi
  stop_all || die "some processes did not stop; state kept in $STATE"
  rm -rf "$STATE"
  log "cluster: stopped, state removed"
}

cmd_status() {
  [[ -d $STATE ]] || { echo "not running (no state in $STATE)"; return 1; }
  local rc=0 c pid
  for c in "${ALL_COMPONENTS[@]}"; do
    # Cluster API's processes are listed only while capi-up has started them.
    [[ " ${CAPI_COMPONENTS[*]} " == *" $c "* && ! -f $STATE/pids/$c ]] && continue
    if pid_alive "$c"; then
      read -r pid _ <"$STATE/pids/$c"
      printf '%-24s running  pid %-8s rss %s kB\n' "$c" "$pid" "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
    else
      printf '%-24s stopped\n' "$c"
      rc=1
    fi
  done
  return $rc
}

# ---------------------------------------------------------------- Cluster API

# The Cluster API core manager runs against this cluster as its management cluster, with the
# admin kubeconfig (no RBAC of its own), its CRDs from the module cache and its webhooks served
# on 127.0.0.1; kwok-machine is the infrastructure provider. Each test then makes a workload
# cluster of its own that points back at this API server (e2e/src/capi/stand.rs).

capi_healthy() {
  local c
  for c in "${CAPI_COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  curl -fsS --max-time 2 "http://127.0.0.1:$CAPI_HEALTH_PORT/readyz" >/dev/null 2>&1
}

stop_capi() {
  stop_each "${CAPI_COMPONENTS[@]}" || return 1
  local c
  for c in "${CAPI_COMPONENTS[@]}"; do rm -f "$STATE/pids/$c"; done
}

# capi_webhooks <module dir>: Cluster API's webhook configurations, rewritten from the in-cluster
# Service they name (which nothing routes here) to the manager's port on 127.0.0.1, trusted
# through the cluster CA. controller-gen writes each Service as name, namespace, path.
capi_webhooks() {
  local ca; ca=$(base64 -w0 <"$STATE/pki/ca.crt")
  awk -v base="https://127.0.0.1:$CAPI_WEBHOOK_PORT" -v ca="$ca" '
    /^  name: (mutating|validating)-webhook-configuration$/ {
      sub(/name: /, "name: molt-e2e-capi-"); sub(/-webhook-configuration$/, "")
    }
    /^    service:$/ { svc = 1; next }
    svc && /^      path: / { print "    url: " base $2; print "    caBundle: " ca; svc = 0; next }
    svc { next }
    { print }' "$1/core/config/webhook/manifests.yaml"
}

cmd_capi_up() {
  lock
  cluster_healthy || die "the cluster is not running; start it first (\`make cluster-up\` or \`e2e/cluster.sh ensure\`)"
  if capi_healthy; then
    log "cluster: Cluster API $CAPI_VERSION already running"
    return 0
  fi
  local t0=$SECONDS
  # Leftovers of a capi-up whose processes are gone (or half gone).
  stop_capi || die "could not stop the Cluster API processes of an earlier capi-up"
  rm -rf "$STATE/capi"

  [[ -x $(bin_path capi-manager) ]] || cmd_build capi
  local machine=${MOLT_KWOK_MACHINE_BIN:-}
  [[ -n $machine ]] || machine=$(harness_bin kwok-machine)
  local src; src=$(capi_source_dir)
  [[ -d $src/core/config/crd/bases ]] || die "Cluster API $CAPI_VERSION not found in the Go module cache (${src:-nothing})"
  for port in "$CAPI_WEBHOOK_PORT" "$CAPI_HEALTH_PORT" "$CAPI_DIAGNOSTICS_PORT"; do
    port_free "$port" || die "port $port is in use by another process"
  done

  STARTING=stop_capi
  trap 'die "interrupted"' INT TERM
  local k=$STATE/kubeconfig certs=$STATE/capi/certs
  mkdir -p "$certs"
  # The manager always serves webhooks (it does not start without a certificate).
  sign capi-webhook "/CN=capi-webhook" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1"
  mv "$STATE/pki/capi-webhook.crt" "$certs/tls.crt"
  mv "$STATE/pki/capi-webhook.key" "$certs/tls.key"
  rm -f "$STATE/pki/capi-webhook".{csr,ext}
  chmod 600 "$certs/tls.key"

  log "cluster: installing the CRDs of Cluster API $CAPI_VERSION and kwok-machine"
  kc apply --server-side --force-conflicts -f "$src/core/config/crd/bases" >/dev/null ||
    die "could not apply Cluster API's CRDs"
  "$machine" --print-crds | kc apply --server-side --force-conflicts -f - >/dev/null ||
    die "could not apply kwok-machine's CRDs"
  kc wait --for=condition=Established --timeout="${WAIT_SECONDS}s" -f "$src/core/config/crd/bases" >/dev/null ||
    die "Cluster API's CRDs were not established"

  log "cluster: starting capi-manager, kwok-machine"
  KUBECONFIG=$k start capi-manager "$(bin_path capi-manager)" \
    --leader-elect=false \
    --webhook-port="$CAPI_WEBHOOK_PORT" --webhook-cert-dir="$certs" \
    --health-addr="127.0.0.1:$CAPI_HEALTH_PORT" \
    --diagnostics-address="127.0.0.1:$CAPI_DIAGNOSTICS_PORT" --insecure-diagnostics
  KUBECONFIG=$k RUST_LOG=${RUST_LOG:-info} start kwok-machine "$machine" \
    --ready-file "$STATE/capi/kwok-machine.ready"
  wait_for "capi-manager /readyz" curl -fsS --max-time 2 "http://127.0.0.1:$CAPI_HEALTH_PORT/readyz"
  wait_for "kwok-machine" test -f "$STATE/capi/kwok-machine.ready"
  # Registered once the manager serves them: they fail closed.
  capi_webhooks "$src" | kc apply --server-side --force-conflicts -f - >/dev/null ||
    die "could not register Cluster API's webhooks"

  STARTING=
  trap - INT TERM
  log "cluster: Cluster API $CAPI_VERSION up in $((SECONDS - t0))s" \
    "(webhooks on https://127.0.0.1:$CAPI_WEBHOOK_PORT, logs in $STATE/logs)"
}

cmd_capi_down() {
  lock
  if [[ ! -d $STATE/capi ]]; then
    log "cluster: Cluster API not running"
    return 0
  fi
  # Webhooks first: they fail closed, so without the manager no Cluster API object could be
  # written (or deleted) any more.
  if cluster_healthy; then
    kc delete --ignore-not-found "${CAPI_WEBHOOKS[@]}" >/dev/null || die "could not remove Cluster API's webhooks"
  fi
  stop_capi || die "some Cluster API processes did not stop"
  rm -rf "$STATE/capi"
  log "cluster: Cluster API stopped (its CRDs and objects stay until \`down\`)"
}

case "${1:-}" in
  build) shift; cmd_build "$@" ;;
  up) shift; cmd_up "$@" ;;
  ensure) cmd_ensure ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "export KUBECONFIG=$STATE/kubeconfig" ;;
  capi-up) cmd_capi_up ;;
  capi-down) cmd_capi_down ;;
  *) echo "usage: $0 build [capi]|up [--replace]|ensure|down|status|env|capi-up|capi-down" >&2; exit 2 ;;
esac
