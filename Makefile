# The two commands of the README, and housekeeping.
.PHONY: demo test setup down clean-state crd

demo:            ## set up, start the local cluster + Prometheus + operator, show it scaling live
	bash scripts/demo.sh

test:            ## set up and run every check (lint, types, unit and cluster tests)
	bash scripts/test.sh

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
