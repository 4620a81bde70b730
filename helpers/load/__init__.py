"""Load (notebooks 04, 06, 07): k6 and vegeta against a stack, bounded, with their own CPU.

profiles (the load shapes, frozen into each run), k6 (one k6 run: environment, progress,
generator CPU), vegeta (the open-loop generator), loadtest (the seed's ramp in coupled and
isolated modes, indexed in the run folder), steps (one constant-rate step and what it cost
both sides), capacity (the highest rate that holds the objective, per service),
cpu_per_request (the CPU curve), generator_check (vegeta against k6), overhead_ladder (where
a request's CPU goes), factors + ablation_plan + ablation (notebook 08, the why: every
configuration an instance of one stack, published vs tuned and each factor paired).
"""
