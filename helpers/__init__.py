"""The onnx-serving-study package: everything the numbered notebooks compute.

One room per stage of the study, so the code behind a notebook is one hop away
(helpers/README.md draws the rooms and the data flow):

    model/     01, 02, 08  train, convert, parity, graph, manifest, microbench
    serving/   03          the Stack protocol, the local backend (cgroups, exporter,
                           Prometheus, processes), serving/docker/ the Docker backend
    load/      04, 06      k6 runs, load profiles, the capacity search
    analysis/  05          PromQL, Prometheus → DataFrames, plots, claims, summary.json
    study/                 `make study` (the papermill driver) and the notebook hygiene check
    bench.py               `make bench`
    paths.py, net.py       where things live; waiting and ports (used by every room)
"""
