"""Load (notebooks 04, 06): k6 against a stack, bounded, with progress and its own CPU.

profiles (the load shapes, frozen into each run), k6 (one k6 run: environment, progress,
generator CPU), loadtest (the seed's ramp in coupled and isolated modes, indexed in the run
folder), capacity (the highest rate that holds the objective, per service).
"""
