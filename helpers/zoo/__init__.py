"""Beyond logistic regression (notebook 09): other classifiers trained, converted, costed,
served — and the safety of the formats they are shipped in.

classifiers (the zoo: train, save and check each model in its own artifacts folder),
conversion (each input type converted and checked for parity, the served one chosen),
repairs (skl2onnx 1.20 workarounds the zoo needs), report (the conversion and parity tables
and findings), costs (size, load time, memory after load, latency per model), safety (pickle
vs skops vs ONNX, harmlessly), serving (every model on one stack beside logistic regression,
compared in alternating windows, each window's own CPU: no telemetry is paid later),
heaviest (the heaviest model's capacity and cold start on that stack), serving_report (their
tables, figure and sentences), record (zoo.json and summary.json's `zoo` section).
"""
