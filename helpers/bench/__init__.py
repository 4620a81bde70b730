"""`make bench`: side-by-side benchmarks printed to the terminal, one section per question.

driver (the sections and `--only`), capacity (the capacity search on a limited local stack),
footprint (idle memory, CPU per 1000 requests), saturation + go_json (one process at
saturation, two builds side by side), telemetry_paths (telemetry off / pulled / pushed). At the
top of the house: it combines the model, serving and load rooms, and nothing imports it.
"""

from helpers.bench.driver import main

__all__ = ["main"]
