"""The onnx-serving-study package: everything the numbered notebooks compute.

One room per stage of the study, so the code behind a notebook is one hop away; imports only
go down the list (helpers/README.md draws the rooms, the layers and the data flow):

    study/ bench/ kubernetes/ zoo/   the drivers: `make study`, `make bench`,
                                     `make k8s-manifests`, notebook 08
    analysis/   05, 06, 07, 00      Prometheus → DataFrames, plots, claims, summary.json
    load/       04, 06, 07          k6 and vegeta runs, load profiles, capacity, the ablation
    prometheus/ 05, 07              every PromQL, the query client, a run's TSDB reopened
    serving/    03                  the Stack protocol, the local and Docker backends
    model/      01, 02              train, convert, parity, graph, manifest, microbench
    paths.py, net.py, sizing.py     where things live; waiting and ports; how much each
                                    notebook measures per profile
"""
