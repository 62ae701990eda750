#!/usr/bin/env bash
# Installs what forecastscaler needs to run and test on this machine: the CPU build of torch,
# the package with its dev tools and the simulator's extras, and (through the cluster scripts) etcd, Prometheus and the
# locally built kube-apiserver. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }

if ! python3 -c 'import torch' 2>/dev/null; then
  # On this machine kind the CPU wheel lies in pip's find-links; a plain `torch` requirement
  # would otherwise pull several GB of CUDA packages from the index.
  log "installing torch 2.13.0 (CPU build)"
  python3 -m pip install --quiet torch==2.13.0
fi
# (Re)install unless the importable package is this very checkout, editable, with all portions.
here="$(pwd -P)"
installed="$(python3 -c 'import forecastscaler.operator as o, forecastscaler.models, forecastscaler.simulator; print(o.__file__)' 2>/dev/null || true)"
stamp=".setup-stamp"   # pyproject's hash at the last install: new dependencies reinstall
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
case "$installed" in
  "$here"/*) [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || installed="" ;;
  *) installed="" ;;
esac
if [ -z "$installed" ]; then
  log "installing forecastscaler (editable) with its dev tools and the simulator's extras"
  python3 -m pip install --quiet -e '.[dev,simulator]'
  echo "$want" > "$stamp"
fi
log "building or reusing the local control plane binaries"
bash scripts/build-control-plane.sh >/dev/null
log "done"
