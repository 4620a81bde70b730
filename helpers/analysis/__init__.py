"""Analysis (notebook 05): Prometheus and run-folder files → numbers, plots and verdicts.

tsdb (reopen a run's Prometheus), queries (every PromQL, also the dashboard's), metrics
(tidy DataFrames per phase and service), plots, claims (the seed's claims, computed),
summary (summary.json), dashboard (Grafana JSON generated from queries). Reads the run folder
only — never the stack, never artifacts/ or k6/profiles.json — so a run re-analyses later.
"""
