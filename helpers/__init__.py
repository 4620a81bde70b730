"""The onnx-serving-study package: everything the numbered notebooks compute.

Modules are named after the study's stages (train, convert, parity, graph, stack, loadtest,
metrics, plots, study) so a reader finds the code behind a notebook section by its name.
"""
