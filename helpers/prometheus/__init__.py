"""Prometheus, read: every PromQL of the study and the one client that sends it.

queries (all PromQL, named: the notebooks' and the Grafana dashboard's), client (query_range,
query_instant, query_samples through prometheus-api-client), tsdb (reopen a finished run's
TSDB with the Prometheus binary), dashboard (the Grafana dashboard generated from queries:
`python -m helpers.prometheus.dashboard`). Below both load (a step reads its counters) and
analysis (a finished run's series); above serving, whose Prometheus server it reopens.
"""
