"""Serving (notebook 03): the three services, limited like containers, and Prometheus.

stack (the `Stack` protocol both backends implement, `start_stack`), local (the default
backend: processes in cgroups), cgroups + cgroup_stats (make, read and remove cgroups),
exporter (cAdvisor's metric names from cgroups), prometheus (the real server), process
(start/stop without orphans), ports (the one port policy), services (the services' command
lines), footprint (`make bench`: idle memory, CPU per request); docker/ the Docker backend.
"""
