"""The model half (notebooks 01–02): train the seed's pipeline, convert it to ONNX, prove parity.

train (GridSearchCV on iris → model.pkl), manifest (hashes, labels, ranges: what services
verify before loading), convert (skl2onnx → model.onnx, model_zipmap.onnx), parity (pickle vs
ONNX Runtime on every kind of row), graph (SVG + Netron), microbench (single-row latency),
artifacts (make the model from a clone); for notebook 08: zoo (other classifiers, each in its
own artifacts folder), repairs (skl2onnx 1.20 workarounds the zoo needs), costs (size, load
time, memory after load, latency per model), safety (pickle vs skops vs ONNX, harmlessly).
Knows nothing of serving or load.
"""
