#!/usr/bin/env bash
# Sets everything up and runs every check: `make lint` (ruff, format, mypy, import layers), the unit tests, and the cluster tests
# against the local control plane and Prometheus (started here if they are not running).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not cluster"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/local-cluster.sh up
bash scripts/local-prometheus.sh up
eval "$(bash scripts/local-cluster.sh env)"
eval "$(bash scripts/local-prometheus.sh env)"

echo "[test] make lint (ruff, format, mypy, import layers)" >&2
make --no-print-directory lint
echo "[test] pytest" >&2
python3 -m pytest "$@"
