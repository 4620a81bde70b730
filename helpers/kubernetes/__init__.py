"""The study on Kubernetes: manifests generated from the sources the other backends use.

`sources` reads what the local and Docker backends already fix (docker-compose.yaml's limits,
images, ports and environment; the local cgroups' limits; k6/profiles.json; Prometheus'
settings); `objects` turns it into the services, Prometheus and ConfigMaps, `testruns` into
k6-operator TestRuns, `replicas` reads a run's capacity into replicas and HPAs, `validate`
checks every object against Kubernetes' schemas and the TestRun CRD, and `__main__` writes the
files (`make k8s-manifests`). No cluster is needed for any of it.
"""
