"""Analysis (notebooks 05, 06, 07, 00): Prometheus and run-folder files → numbers, plots, verdicts.

metrics (tidy DataFrames per phase and service, through helpers.prometheus), plots, claims
(the seed's claims, computed), summary (summary.json), findings (computed sentences), cost,
capacity_plots, why + why_sentences + why_plots + why_inputs (08: the paired effects' table),
observations + memory_observations (the post's observations explained), headline (00). Reads
the run folder only — never the stack, never artifacts/ or k6/profiles.json — so a run
re-analyses later.
"""
