"""What the two Python services share: the contract, settings, telemetry and the server.

Only `python-api-pkl` and `python-api-onnx` import this package; the study's `helpers` never
do and this package never imports `helpers` (services share the contract, not code, with the
rest of the study). A service supplies one thing, a `Predictor`; everything else — request
parsing, error bodies, metrics, start-up checks, graceful shutdown — is identical by
construction, so the two Python services differ only in how they run the model.
"""
