# The two commands of the README, and housekeeping.
.PHONY: demo test lint unit setup down clean-state crd

demo:            ## set up, start the local cluster + Prometheus + operator, show it scaling live
	bash scripts/demo.sh

test:            ## set up and run every check (lint, types, unit and cluster tests)
	bash scripts/test.sh

lint:            ## the fast static checks: ruff, format, mypy (strict), the import-layer contracts
	ruff check .
	ruff format --check .
	mypy
	lint-imports

unit:            ## the tests that need no cluster, but the long replays (`slow`): the fast loop
	python3 -m pytest -m "not cluster and not slow" -q

setup:
	bash scripts/setup.sh

down:            ## stop the demo's operator and load, Prometheus and the local control plane
	-bash scripts/demo.sh stop
	-bash scripts/local-prometheus.sh down
	-bash scripts/local-cluster.sh down

clean-state: down
	-bash scripts/local-prometheus.sh down --purge
	-bash scripts/local-cluster.sh down --purge

crd:             ## regenerate crds/ from the pydantic models
	forecastscaler crd > crds/forecastscaler.yaml
