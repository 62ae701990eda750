#!/usr/bin/env bash
# The README's first command: on a fresh machine, set everything up and show a ForecastScaler
# scaling a Deployment ahead of a real load, live, with its reasons.
#
#   scripts/demo.sh          set up, start everything, watch for DEMO_SECONDS (default 300)
#   scripts/demo.sh stop     stop the demo's operator and load generator
#
# What runs: the local control plane (etcd, kube-apiserver, kube-controller-manager) and
# Prometheus on loopback; a load exporter replaying the bundled Wikipedia trace in compressed
# time, with its first week backfilled into Prometheus; the operator; examples/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${FORECASTSCALER_STATE:-/tmp/forecastscaler-local}"
RUN="$STATE/demo"
DEMO_SECONDS="${DEMO_SECONDS:-300}"
log() { echo "[demo] $*" >&2; }

stop_demo() {
  for name in operator load; do
    if [ -f "$RUN/$name.pid" ]; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
}

if [ "${1:-}" = "stop" ]; then
  stop_demo
  log "stopped the operator and the load; 'make down' stops the cluster and Prometheus too"
  exit 0
fi

bash scripts/setup.sh
bash scripts/local-cluster.sh up
eval "$(bash scripts/local-cluster.sh env)"
mkdir -p "$RUN" "$STATE/logs"
stop_demo

# A fresh Prometheus: the replayed history is backfilled before live scraping starts.
bash scripts/local-prometheus.sh down --purge >/dev/null 2>&1 || true
log "replaying the bundled Wikipedia trace (1 hour = 5 s) with a week of backfilled history"
rm -f "$RUN/history.om"
nohup forecastscaler serve-load --port 9101 --backfill-out "$RUN/history.om" \
  > "$STATE/logs/demo-load.log" 2>&1 &
echo $! > "$RUN/load.pid"
for _ in $(seq 1 50); do [ -s "$RUN/history.om" ] && break; sleep 0.2; done
[ -s "$RUN/history.om" ] || { log "the load generator did not start:"; cat "$STATE/logs/demo-load.log"; exit 1; }
bash scripts/local-prometheus.sh up --backfill "$RUN/history.om"
eval "$(bash scripts/local-prometheus.sh env)"
python3 - "$STATE/prometheus/targets" <<'PY'
import sys
from pathlib import Path
from forecastscaler.simulator.live import write_targets_file
write_targets_file(Path(sys.argv[1]), "forecastscaler-demo", 9101, "demo")
PY

kubectl apply -f crds/forecastscaler.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/forecastscalers.forecastscaler.io >/dev/null
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl delete forecastscaler web -n demo --ignore-not-found --wait=false >/dev/null 2>&1 || true
kubectl patch forecastscaler web -n demo --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
kubectl apply -f examples/demo/deployment.yaml >/dev/null
kubectl scale deployment web -n demo --replicas=2 >/dev/null
kubectl apply -f examples/demo/forecastscaler.yaml >/dev/null

log "starting the operator (log: $STATE/logs/operator.log)"
nohup forecastscaler run --namespace demo --prometheus-url "$FORECASTSCALER_PROMETHEUS_URL" \
  > "$STATE/logs/operator.log" 2>&1 &
echo $! > "$RUN/operator.pid"

view() {
  echo "forecastscaler demo — $(date -u +%H:%M:%S) UTC — one trace hour every 5 s (Ctrl-C ends the view; 'make down' stops everything)"
  echo
  kubectl get forecastscaler -n demo -o wide
  echo
  kubectl get deployment web -n demo -o custom-columns='DEPLOYMENT:.metadata.name,SPEC REPLICAS:.spec.replicas'
  echo
  kubectl get forecastscaler web -n demo \
    -o jsonpath='{"load now:  "}{.status.currentLoad}{"\nforecast:  p90 "}{.status.forecast.value}{" at +"}{.status.forecast.horizonSeconds}{"s by "}{.status.forecast.model}{" (80% interval "}{.status.forecast.lower}{" – "}{.status.forecast.upper}{")\ndecision:  "}{.status.lastDecision.reason}{": "}{.status.lastDecision.message}{"\n"}' 2>/dev/null || true
  echo
  echo "recent events:"
  kubectl get events -n demo --field-selector involvedObject.kind=ForecastScaler \
    --sort-by=.lastTimestamp -o custom-columns='TYPE:.type,REASON:.reason,MESSAGE:.message' 2>/dev/null | tail -n 8
}

end=$(( $(date +%s) + DEMO_SECONDS ))
trap 'echo; kubectl describe forecastscaler web -n demo; exit 0' INT
while [ "$(date +%s)" -lt "$end" ]; do
  if [ -t 1 ]; then clear; fi
  view
  [ -t 1 ] || echo "----"
  sleep 5
done
echo
kubectl describe forecastscaler web -n demo
echo
log "still running: the operator and the load keep going. Try: kubectl get fsc -n demo -w"
log "stop everything with: make down"
