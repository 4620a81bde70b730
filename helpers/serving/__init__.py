"""Serving (notebook 03): the three services, limited like containers, and Prometheus.

protocol (the `Stack` protocol both backends implement, its records and their readers),
stack (`start_stack`, the one door to either backend), teardown (every stop step runs, the
first error is raised), local/ (the default backend: processes in cgroups), docker/ (the
Docker backend; docker/standins/ its machine workarounds), collector (the OpenTelemetry
Collector on this host), prometheus_server (the real Prometheus binary), process (start/stop
without orphans), ports (the one port policy), services (the services' command lines).
"""
