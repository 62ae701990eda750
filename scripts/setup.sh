#!/usr/bin/env bash
# Installs what forecastscaler needs to run and test on this machine: the CPU build of torch,
# the package with its dev tools, and (through the cluster scripts) etcd, Prometheus and the
# locally built kube-apiserver. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[setup] $*" >&2; }

if ! python3 -c 'import torch' 2>/dev/null; then
  # On this machine kind the CPU wheel lies in pip's find-links; a plain `torch` requirement
  # would otherwise pull several GB of CUDA packages from the index.
  log "installing torch 2.13.0 (CPU build)"
  pip install --quiet torch==2.13.0
fi
if ! python3 -c 'import forecastscaler.operator, forecastscaler.models, forecastscaler.simulator' 2>/dev/null \
   || [ pyproject.toml -nt "$(python3 -c 'import forecastscaler.operator as m, pathlib; print(pathlib.Path(m.__file__))' 2>/dev/null || echo /nonexistent)" ]; then
  log "installing forecastscaler (editable) with its dev tools"
  pip install --quiet -e '.[dev]'
fi
log "building or reusing the local control plane binaries"
bash scripts/build-control-plane.sh >/dev/null
log "done"
