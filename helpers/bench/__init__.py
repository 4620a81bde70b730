"""`make bench`: side-by-side benchmarks printed to the terminal, one section per question.

driver (the sections and `--only`), capacity (the capacity search on a limited local stack),
footprint (idle memory, CPU per 1000 requests), saturation + go_json (one process at
saturation, two builds side by side), telemetry_paths (telemetry off / pulled / pushed). At the
top of the house: it combines the model, serving and load rooms, and nothing imports it.
`python -m helpers.bench` runs helpers.bench.driver; a section runs alone as its module
(`python -m helpers.bench.footprint`), so this package imports none of them.
"""
