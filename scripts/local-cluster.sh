#!/usr/bin/env bash
# A real local Kubernetes v1.20.2 control plane on 127.0.0.1 (etcd, kube-apiserver,
# kube-controller-manager; no scheduler or kubelet, so Pods stay Pending) for tests and the demo.
#
# Usage:
#   scripts/local-cluster.sh up             start (idempotent; builds the binaries on first use)
#   scripts/local-cluster.sh down [--purge] stop; --purge also deletes the cluster's state
#   scripts/local-cluster.sh status         exit 0 only if every component runs and is healthy
#   scripts/local-cluster.sh env            print export lines (KUBECONFIG, and PATH when no
#                                           system kubectl exists)
#
# Environment:
#   FORECASTSCALER_STATE  state root (default /tmp/forecastscaler-local): pki/, etcd/, run/,
#                         logs/{etcd,kube-apiserver,kube-controller-manager}.log, kubeconfig
#   FSC_APISERVER_PORT    kube-apiserver https port (default 6443)
#   FSC_ETCD_PORT         etcd client port (default 23790); FSC_ETCD_PEER_PORT (default 23800)
#   FSC_KCM_PORT          kube-controller-manager https (healthz) port (default 10257)
#   FSC_CLUSTER_TIMEOUT   seconds to wait for readiness (default 90)
#
# Clients use $STATE/kubeconfig (context "forecastscaler-local", user "admin" in system:masters).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FSC_LOG_PREFIX="[local-cluster]"
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"

APISERVER_PORT="${FSC_APISERVER_PORT:-6443}"
ETCD_PORT="${FSC_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${FSC_ETCD_PEER_PORT:-23800}"
KCM_PORT="${FSC_KCM_PORT:-10257}"
TIMEOUT="${FSC_CLUSTER_TIMEOUT:-90}"

PKI="$STATE/pki"
RUN="$STATE/run"
ETCD_DATA="$STATE/etcd"
KUBECONFIG_FILE="$STATE/kubeconfig"
KCM_KUBECONFIG="$STATE/controller-manager.kubeconfig"
BINDIR_FILE="$STATE/bindir"
SERVER="https://127.0.0.1:$APISERVER_PORT"
ETCD_URL="http://127.0.0.1:$ETCD_PORT"
CONTEXT="forecastscaler-local"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP="10.96.0.1" # first address of SERVICE_CIDR: ClusterIP of the "kubernetes" Service
ISSUER="https://kubernetes.default.svc"

COMPONENTS=(etcd kube-apiserver kube-controller-manager)

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOG_DIR/$1.log"; }
running() { fsc_pid_running "$(pidfile "$1")" "$1"; }

admin_token() { cat "$PKI/admin.token"; }

# curl against the apiserver as admin; extra args are passed through.
api() {
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(admin_token)" "$@"
}

healthy() {
  case "$1" in
    etcd) curl -fsS --max-time 3 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' ;;
    kube-apiserver) [ -f "$PKI/admin.token" ] && [ "$(api "$SERVER/readyz" 2>/dev/null)" = "ok" ] ;;
    # /healthz is in the default --authorization-always-allow-paths; the serving cert is self-signed.
    kube-controller-manager) [ "$(curl -fsSk --max-time 3 "https://127.0.0.1:$KCM_PORT/healthz" 2>/dev/null)" = "ok" ] ;;
  esac
}

port_of() {
  case "$1" in
    etcd) echo "$ETCD_PORT" ;;
    kube-apiserver) echo "$APISERVER_PORT" ;;
    kube-controller-manager) echo "$KCM_PORT" ;;
  esac
}

ensure_tools() {
  fsc_ensure_pkg etcd etcd-server
  fsc_ensure_pkg openssl openssl
  fsc_ensure_pkg curl curl
  BIN="$("$SCRIPT_DIR/build-control-plane.sh" | tail -n 1)"
  for b in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$b" ] || fsc_die "build-control-plane.sh did not provide $BIN/$b"
  done
  mkdir -p "$STATE"
  echo "$BIN" >"$BINDIR_FILE"
}

# ---------------------------------------------------------------- certificates and credentials

gen_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [ ! -s "$PKI/ca.crt" ] || [ ! -s "$PKI/ca.key" ]; then
    fsc_log "generating the cluster CA"
    rm -f "$PKI/apiserver.crt" # anything signed by an old CA is useless now
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
      -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=forecastscaler-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  fi
  if [ ! -s "$PKI/apiserver.crt" ] || [ ! -s "$PKI/apiserver.key" ]; then
    fsc_log "generating the kube-apiserver serving certificate"
    cat >"$PKI/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$PKI/apiserver.key" \
      -out "$PKI/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" \
      -CAkey "$PKI/ca.key" -CAcreateserial -extfile "$PKI/apiserver.ext" \
      -out "$PKI/apiserver.crt" 2>/dev/null
  fi
  # Front-proxy (request-header) CA and client, as kubeadm sets up: without a
  # requestheader-client-ca-file the controller-manager logs errors about the missing
  # extension-apiserver-authentication CA bundle forever, and aggregated APIs could not work.
  if [ ! -s "$PKI/front-proxy-ca.crt" ] || [ ! -s "$PKI/front-proxy-ca.key" ]; then
    rm -f "$PKI/front-proxy-client.crt"
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
      -keyout "$PKI/front-proxy-ca.key" -out "$PKI/front-proxy-ca.crt" -subj "/CN=forecastscaler-local-front-proxy-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  fi
  if [ ! -s "$PKI/front-proxy-client.crt" ] || [ ! -s "$PKI/front-proxy-client.key" ]; then
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$PKI/front-proxy-client.ext"
    openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout "$PKI/front-proxy-client.key" \
      -out "$PKI/front-proxy-client.csr" -subj "/CN=front-proxy-client" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" \
      -CAkey "$PKI/front-proxy-ca.key" -CAcreateserial -extfile "$PKI/front-proxy-client.ext" \
      -out "$PKI/front-proxy-client.crt" 2>/dev/null
  fi
  if [ ! -s "$PKI/sa.key" ] || [ ! -s "$PKI/sa.pub" ]; then
    fsc_log "generating the service-account signing key pair"
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  # Static bearer tokens: "admin" (system:masters) for people/tests, and the controller-manager's
  # own identity, which the bootstrap RBAC policy already grants what it needs.
  [ -s "$PKI/admin.token" ] || openssl rand -hex 32 >"$PKI/admin.token"
  [ -s "$PKI/kcm.token" ] || openssl rand -hex 32 >"$PKI/kcm.token"
  cat >"$PKI/tokens.csv" <<EOF
$(cat "$PKI/admin.token"),admin,admin,"system:masters"
$(cat "$PKI/kcm.token"),system:kube-controller-manager,system:kube-controller-manager
EOF
  chmod 600 "$PKI"/*.key "$PKI"/*.token "$PKI/tokens.csv"
}

# write_kubeconfig FILE USER TOKEN
write_kubeconfig() {
  local file="$1" user="$2" token="$3" tmp
  tmp="$file.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: $SERVER
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    token: $token
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $user
    namespace: default
current-context: $CONTEXT
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

# ---------------------------------------------------------------- components

start_etcd() {
  mkdir -p "$ETCD_DATA"
  chmod 700 "$ETCD_DATA"
  # Single member; peer URL only on loopback. Metrics/health are served on the client URL.
  fsc_start_bg etcd "$(pidfile etcd)" "$(logfile etcd)" \
    etcd \
    --name=forecastscaler \
    --data-dir="$ETCD_DATA" \
    --listen-client-urls="$ETCD_URL" \
    --advertise-client-urls="$ETCD_URL" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="forecastscaler=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --logger=zap
}

start_kube_apiserver() {
  # Notes for v1.20:
  #  - --service-account-issuer and --service-account-signing-key-file are required by 1.20
  #    (TokenRequest API); --api-audiences defaults to the issuer, set explicitly for clarity.
  #  - No --insecure-port: in 1.20 it is already off and the flag only logs a deprecation.
  #  - --endpoint-reconciler-type=none: the "kubernetes" Service still exists, but the apiserver
  #    does not try (and fail every 10s: loopback IPs are invalid endpoints) to publish
  #    127.0.0.1 as its endpoint.
  #  - The default admission plugins (incl. ServiceAccount, NamespaceLifecycle, ResourceQuota)
  #    need no nodes, so none are disabled.
  fsc_start_bg kube-apiserver "$(pidfile kube-apiserver)" "$(logfile kube-apiserver)" \
    "$BIN/kube-apiserver" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer="$ISSUER" \
    --api-audiences="$ISSUER" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --etcd-servers="$ETCD_URL" \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --cert-dir="$PKI/apiserver-generated" \
    --profiling=false
}

start_kube_controller_manager() {
  write_kubeconfig "$KCM_KUBECONFIG" system:kube-controller-manager "$(cat "$PKI/kcm.token")"
  # --flex-volume-plugin-dir: the default (/usr/libexec/kubernetes/...) would be created on the host.
  # --port=0 turns off the deprecated insecure port (10252 on 0.0.0.0 by default in 1.20).
  # The CA doubles as the CSR signer so certificates.k8s.io works too.
  fsc_start_bg kube-controller-manager "$(pidfile kube-controller-manager)" "$(logfile kube-controller-manager)" \
    "$BIN/kube-controller-manager" \
    --kubeconfig="$KCM_KUBECONFIG" \
    --authentication-kubeconfig="$KCM_KUBECONFIG" \
    --authorization-kubeconfig="$KCM_KUBECONFIG" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --port=0 \
    --cert-dir="$PKI/kcm-generated" \
    --flex-volume-plugin-dir="$STATE/kcm-flexvolume" \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=true \
    --controllers='*' \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false \
    --profiling=false
}

# ensure_component NAME: start NAME unless it already runs, then wait until it is healthy.
ensure_component() {
  local name="$1" deadline
  if running "$name"; then
    if fsc_wait_for 5 "$name health" healthy "$name"; then
      return 0
    fi
    fsc_log "$name is running but unhealthy; restarting it"
    fsc_stop_pid "$name" "$(pidfile "$name")" "$name" 20
  fi
  fsc_require_free_port "$(port_of "$name")" "$name"
  fsc_log "starting $name (log: $(logfile "$name"))"
  "start_${name//-/_}"
  deadline=$((SECONDS + TIMEOUT))
  until healthy "$name"; do
    if ! running "$name"; then
      fsc_tail_log "$(logfile "$name")"
      fsc_die "$name exited during startup (see $(logfile "$name"))"
    fi
    if ((SECONDS >= deadline)); then
      fsc_tail_log "$(logfile "$name")"
      fsc_die "$name did not become healthy within ${TIMEOUT}s (see $(logfile "$name"))"
    fi
    sleep 0.5
  done
}

default_sa_has_token() {
  # In 1.20 the ServiceAccount admission plugin rejects Pods until the SA's token Secret exists,
  # so wait for the token controller to have created it, not just for the SA.
  api "$SERVER/api/v1/namespaces/default/serviceaccounts/default" 2>/dev/null |
    grep -q '"secrets"'
}

wait_for_defaults() {
  if ! fsc_wait_for "$TIMEOUT" "namespace default" api "$SERVER/api/v1/namespaces/default"; then
    fsc_tail_log "$(logfile kube-apiserver)"
    fsc_die "the default namespace did not appear (see $(logfile kube-apiserver))"
  fi
  if ! fsc_wait_for "$TIMEOUT" "serviceaccount default/default and its token" default_sa_has_token; then
    fsc_tail_log "$(logfile kube-controller-manager)"
    fsc_die "the default serviceaccount or its token secret did not appear (see $(logfile kube-controller-manager))"
  fi
}

all_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do
    running "$c" && healthy "$c" || return 1
  done
}

# ---------------------------------------------------------------- commands

cmd_up() {
  [ $# -eq 0 ] || fsc_die "unknown option for up: $1"
  local t0=$SECONDS
  fsc_lock local-cluster
  if [ -s "$BINDIR_FILE" ] && [ -s "$KUBECONFIG_FILE" ] && all_healthy; then
    fsc_log "already up; KUBECONFIG=$KUBECONFIG_FILE"
    return 0
  fi
  # Check every port we are about to bind before starting anything, so a conflict does not
  # leave half a cluster running.
  local c
  for c in "${COMPONENTS[@]}"; do
    running "$c" || fsc_require_free_port "$(port_of "$c")" "$c"
  done
  running etcd || fsc_require_free_port "$ETCD_PEER_PORT" "etcd peer"
  ensure_tools
  gen_pki
  mkdir -p "$RUN" "$LOG_DIR"
  write_kubeconfig "$KUBECONFIG_FILE" admin "$(admin_token)"
  for c in "${COMPONENTS[@]}"; do
    ensure_component "$c"
  done
  wait_for_defaults
  fsc_log "cluster is up in $((SECONDS - t0))s: $SERVER; export KUBECONFIG=$KUBECONFIG_FILE"
}

cmd_down() {
  local purge=0 i
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) fsc_die "unknown option for down: $1" ;;
  esac
  fsc_lock local-cluster
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    local c="${COMPONENTS[i]}"
    if running "$c"; then
      fsc_stop_pid "$c" "$(pidfile "$c")" "$c" 30
    else
      rm -f "$(pidfile "$c")"
    fi
  done
  fsc_log "cluster is down"
  if [ "$purge" = 1 ]; then
    fsc_log "removing the cluster state under $STATE"
    rm -rf "$PKI" "$RUN" "$ETCD_DATA" "$STATE/kcm-flexvolume" "$KUBECONFIG_FILE" "$KCM_KUBECONFIG" "$BINDIR_FILE"
    for c in "${COMPONENTS[@]}"; do rm -f "$(logfile "$c")"; done
    rm -f "$STATE/.local-cluster.lock"
    # The state root is shared with scripts/local-prometheus.sh: remove it only if now empty.
    rmdir "$LOG_DIR" 2>/dev/null || true
    rmdir "$STATE" 2>/dev/null || true
  fi
}

cmd_status() {
  local c rc=0
  for c in "${COMPONENTS[@]}"; do
    if ! running "$c"; then
      echo "$c: not running"
      rc=1
    elif healthy "$c"; then
      echo "$c: running (pid $(cat "$(pidfile "$c")")), healthy"
    else
      echo "$c: running (pid $(cat "$(pidfile "$c")")), NOT healthy"
      rc=1
    fi
  done
  if [ "$rc" = 0 ]; then
    echo "server: $SERVER  kubeconfig: $KUBECONFIG_FILE"
  fi
  return "$rc"
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  if ! command -v kubectl >/dev/null 2>&1; then
    local bin=""
    [ -s "$BINDIR_FILE" ] && bin="$(cat "$BINDIR_FILE")"
    if [ -n "$bin" ] && [ -x "$bin/kubectl" ]; then
      # Single quotes: $PATH is expanded by whoever evals this line.
      # shellcheck disable=SC2016
      printf 'export PATH=%s:"$PATH"\n' "$bin"
    else
      fsc_log "no kubectl on PATH and no built one recorded yet; run '$0 up' first"
    fi
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status ;;
  env) shift; cmd_env ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
