"""Every PromQL query of the study, named, in one place.

The notebooks (through `helpers.analysis.metrics`) and the Grafana dashboard (generated from
these dicts by helpers.prometheus.dashboard) ask Prometheus the very same questions, so a number in
the report and a line in Grafana cannot silently differ. Importing this module has no side effects.

Templates use `$name` placeholders, which is also Grafana's variable syntax (PromQL's own `$1`
in `label_replace` is left alone: only the names in PLACEHOLDERS are substituted):
- `$services`  regex of service names, e.g. `python-api-pkl|go-api-onnx`
- `$window`    rate window of a time series, e.g. `30s` (Grafana: `$__rate_interval`)
- `$range`     a whole phase, for totals evaluated at its end, e.g. `120s`
- `$run_id`    the k6 run's tag (k6 series of several runs can share one Prometheus)

Every query returns one series per service in a label named `service`: the server metrics carry
the service in `job`, cAdvisor's in `name`, k6's in its `service` tag (requests) or `scenario`
(dropped iterations), and `label_replace` maps them all to `service`.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers.serving.services import LATENCY_BUCKETS_S

PLACEHOLDERS = ("services", "window", "range", "run_id")


@dataclass(frozen=True)
class Query:
    promql: str
    unit: str
    description: str


_SERVER = '{job=~"$services", http_route="/predict"}'
_BUCKET = "http_server_request_duration_seconds_bucket" + _SERVER
_COUNT = "http_server_request_duration_seconds_count" + _SERVER
_COUNT_5XX = (
    "http_server_request_duration_seconds_count"
    '{job=~"$services", http_route="/predict", http_response_status_code=~"5.."}'
)
_K6_REQS = 'k6_http_reqs_total{run_id="$run_id", service=~"$services"}'
_K6_FAILED = 'k6_http_reqs_total{run_id="$run_id", service=~"$services", expected_response="false"}'


def _by_job(expr: str) -> str:
    return f'label_replace({expr}, "service", "$1", "job", "(.+)")'


def _by_name(expr: str) -> str:
    return f'label_replace({expr}, "service", "$1", "name", "(.+)")'


def _container(metric: str) -> str:
    return metric + '{name=~"$services"}'


def _sum(expr: str) -> str:
    return f"sum by (service) ({expr})"


def _ratio_or_zero(numerator: str, denominator: str) -> str:
    # A counter that never moved has no series at all: "or … * 0" turns "none" into 0.
    return f"(({numerator}) or ({denominator}) * 0) / ({denominator})"


def _p95(buckets: str) -> str:
    return _quantile(0.95, buckets)


def _quantile(q: float, buckets: str) -> str:
    return f"histogram_quantile({q:g}, sum by (service, le) ({_by_job(buckets)}))"


# The post's dashboard: OpenTelemetry's default histogram boundaries (milliseconds; the post
# queried http_server_duration_milliseconds_bucket) — the SDK's defaults of its time.
SEED_BUCKETS_MS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
# Those of them the study's finer histogram also has (services/CONTRACT.md "Telemetry"), so the
# post's view can be recomputed from a run. 0.75 s and 7.5 s are not among the study's buckets,
# so between 0.5 and 1 s and between 5 and 10 s the recomputed view is coarser than the post's
# was; le="0" needs no series (histogram_quantile takes 0 as the first bucket's lower edge).
SEED_BUCKETS_KEPT_S = tuple(
    b / 1000 for b in SEED_BUCKETS_MS if b and b / 1000 in LATENCY_BUCKETS_S
)
SEED_BUCKETS_MISSING_S = tuple(
    b / 1000 for b in SEED_BUCKETS_MS if b and b / 1000 not in LATENCY_BUCKETS_S
)


def _le_regex(boundaries: tuple[float, ...]) -> str:
    """`le` values as Prometheus may spell them (0.005; 1 or 1.0), and +Inf."""
    spellings = []
    for bound in boundaries:
        for text in dict.fromkeys((f"{bound:g}", repr(float(bound)))):
            spellings.append(text.replace(".", "\\\\."))
    return "|".join([*spellings, "\\\\+Inf"])


_SEED_BUCKET = (
    "http_server_request_duration_seconds_bucket"
    f'{{job=~"$services", http_route="/predict", le=~"{_le_regex(SEED_BUCKETS_KEPT_S)}"}}'
)


# Time series (query_range): one line per service over a run.
TIMESERIES: dict[str, Query] = {
    "server_latency_p95_seconds": Query(
        _p95(f"rate({_BUCKET}[$window])"),
        "s",
        "p95 of POST /predict as the service measured it (OTel histogram), over the rate window",
    ),
    "server_requests_per_minute": Query(
        "60 * " + _sum(_by_job(f"rate({_COUNT}[$window])")),
        "req/min",
        "requests the service answered per minute (any status)",
    ),
    "server_error_ratio": Query(
        _ratio_or_zero(
            _sum(_by_job(f"rate({_COUNT_5XX}[$window])")),
            _sum(_by_job(f"rate({_COUNT}[$window])")),
        ),
        "ratio",
        "share of answers with a 5xx status",
    ),
    "client_latency_p95_seconds": Query(
        'max by (service) (k6_http_req_duration_p95{run_id="$run_id", service=~"$services"})',
        "s",
        "p95 of the request duration k6 saw (k6 remote write: cumulative since the run's start)",
    ),
    "client_requests_per_minute": Query(
        "60 * " + _sum(f"rate({_K6_REQS}[$window])"),
        "req/min",
        "requests k6 completed per minute",
    ),
    "client_error_ratio": Query(
        _ratio_or_zero(_sum(f"rate({_K6_FAILED}[$window])"), _sum(f"rate({_K6_REQS}[$window])")),
        "ratio",
        "share of k6 requests that failed (non-2xx/3xx status, timeout, connection error)",
    ),
    "dropped_iterations": Query(
        _sum(
            'label_replace(k6_dropped_iterations_total{run_id="$run_id"}, '
            '"service", "$1", "scenario", "(.+)")'
        ),
        "iterations",
        "iterations k6 could not start on time (no free VU): offered load never sent; "
        "service 'all' in coupled mode, where one iteration targets every service",
    ),
    "cpu_cores": Query(
        _sum(_by_name(f"rate({_container('container_cpu_usage_seconds_total')}[$window])")),
        "cores",
        "CPU time used per second of wall time (0.5 = the whole quota)",
    ),
    "memory_working_set_bytes": Query(
        f"max by (service) ({_by_name(_container('container_memory_working_set_bytes'))})",
        "bytes",
        "working set = usage - inactive file cache: the memory the kernel cannot reclaim",
    ),
    "memory_rss_bytes": Query(
        f"max by (service) ({_by_name(_container('container_memory_rss'))})",
        "bytes",
        "anonymous resident memory of the service's cgroup",
    ),
    "memory_limit_bytes": Query(
        f"max by (service) ({_by_name(_container('container_spec_memory_limit_bytes'))})",
        "bytes",
        "the memory limit read back from the cgroup (0 = unlimited)",
    ),
    "cpu_throttled_ratio": Query(
        _ratio_or_zero(
            _sum(
                _by_name(
                    f"rate({_container('container_cpu_cfs_throttled_periods_total')}[$window])"
                )
            ),
            _sum(_by_name(f"rate({_container('container_cpu_cfs_periods_total')}[$window])")),
        ),
        "ratio",
        "share of CFS periods in which the service hit its CPU quota and was paused",
    ),
    "oom_kills": Query(
        f"max by (service) ({_by_name(_container('container_oom_events_total'))})",
        "kills",
        "OOM kills in the service's cgroup so far",
    ),
    "memory_usage_bytes": Query(
        f"max by (service) ({_by_name(_container('container_memory_usage_bytes'))})",
        "bytes",
        "cgroup memory usage including page cache: the post's memory panel (not the working set)",
    ),
    "server_latency_p95_seconds_seed_buckets": Query(
        _p95(f"increase({_SEED_BUCKET}[$window])"),
        "s",
        "p95 from the post's bucket layout (OTel's default boundaries 5, 10, 25, 50 ms, …) "
        "selected from the study's finer histogram: below 5 ms it is an interpolation",
    ),
}

# Totals over one phase: instant queries evaluated at the phase's end, `$range` = its length.
TOTALS: dict[str, Query] = {
    "server_requests": Query(
        _sum(_by_job(f"increase({_COUNT}[$range])")),
        "requests",
        "requests answered in the phase",
    ),
    "server_errors_5xx": Query(
        _sum(_by_job(f"increase({_COUNT_5XX}[$range])")),
        "requests",
        "5xx answers in the phase (no series = none)",
    ),
    "server_latency_p95_seconds": Query(
        _p95(f"increase({_BUCKET}[$range])"),
        "s",
        "p95 over the whole phase, comparable with k6's end-of-test p95",
    ),
    "server_latency_p99_seconds": Query(
        _quantile(0.99, f"increase({_BUCKET}[$range])"),
        "s",
        "p99 over the whole phase (or step), from the service's histogram",
    ),
    "server_latency_p95_seconds_seed_buckets": Query(
        _p95(f"increase({_SEED_BUCKET}[$range])"),
        "s",
        "p95 over the phase from the post's bucket layout (see the time series of that name)",
    ),
    "cpu_cores_mean": Query(
        _sum(_by_name(f"rate({_container('container_cpu_usage_seconds_total')}[$range])")),
        "cores",
        "mean CPU cores over the phase",
    ),
    "memory_working_set_peak_bytes": Query(
        "max by (service) ("
        + _by_name(f"max_over_time({_container('container_memory_working_set_bytes')}[$range])")
        + ")",
        "bytes",
        "peak working set in the phase",
    ),
    "memory_usage_peak_bytes": Query(
        "max by (service) ("
        + _by_name(f"max_over_time({_container('container_memory_usage_bytes')}[$range])")
        + ")",
        "bytes",
        "peak cgroup memory usage (page cache included) in the phase",
    ),
    "cpu_throttled_ratio": Query(
        _ratio_or_zero(
            _sum(
                _by_name(
                    f"increase({_container('container_cpu_cfs_throttled_periods_total')}[$range])"
                )
            ),
            _sum(_by_name(f"increase({_container('container_cpu_cfs_periods_total')}[$range])")),
        ),
        "ratio",
        "share of CFS periods throttled over the phase",
    ),
    "oom_kills": Query(
        "max by (service) ("
        + _by_name(f"max_over_time({_container('container_oom_events_total')}[$range])")
        + ")",
        "kills",
        "OOM kills counted by the end of the phase",
    ),
}

# Raw counters, instant values (no window): what a reader compares at two moments.
COUNTERS: dict[str, Query] = {
    "server_requests_total": Query(
        _sum(_by_job(_COUNT)),
        "requests",
        "requests the service's histogram has counted since it started (any status)",
    ),
}

# The metric names the study reads (docs/measuring.md, "The metrics the study reads") with the
# label that names the service in each: the smoke test asserts every one has a series for every
# service.
CONTRACT_METRICS: dict[str, str] = {
    "http_server_request_duration_seconds_bucket": "job",
    "http_server_request_duration_seconds_sum": "job",
    "http_server_request_duration_seconds_count": "job",
    "container_cpu_usage_seconds_total": "name",
    "container_memory_working_set_bytes": "name",
    "container_memory_rss": "name",
    "container_cpu_cfs_periods_total": "name",
    "container_cpu_cfs_throttled_periods_total": "name",
    "container_spec_memory_limit_bytes": "name",
    "container_oom_events_total": "name",
    "k6_http_reqs_total": "service",
    "k6_http_req_duration_p95": "service",
}


def render(name: str, *, table: str = "timeseries", **params: object) -> str:
    """The PromQL of query `name` with its `$placeholders` filled in.

    Raises KeyError naming the query or the missing placeholder, so a typo never reaches
    Prometheus as a literal `$window`.
    """
    queries = {"timeseries": TIMESERIES, "totals": TOTALS, "counters": COUNTERS}[table]
    if name not in queries:
        raise KeyError(f"no {table} query named {name!r}; known: {', '.join(queries)}")
    promql = queries[name].promql
    for placeholder in PLACEHOLDERS:
        token = "$" + placeholder
        if token in promql:
            if placeholder not in params:
                raise KeyError(f"query {name!r} needs parameter {placeholder!r}")
            promql = promql.replace(token, str(params[placeholder]))
    return promql


def services_regex(services: list[str] | tuple[str, ...]) -> str:
    """A PromQL regex matching exactly these service names (names are literal, dots escaped
    for the regex and the backslash for the PromQL string it goes in, as `le` is above)."""
    return "|".join(s.replace(".", "\\\\.") for s in services)
