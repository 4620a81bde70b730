"""The model half (notebooks 01–02): train the seed's pipeline, convert it to ONNX, prove parity.

train (GridSearchCV on iris → model.pkl), manifest (hashes, labels, ranges: what services
verify before loading), convert (skl2onnx → model.onnx, model_zipmap.onnx), parity (pickle vs
ONNX Runtime on every kind of row), graph (SVG + Netron), microbench (single-row latency),
artifacts (make the model from a clone). Knows nothing of serving or load; the other
classifiers of notebook 08 are helpers.zoo's.
"""
