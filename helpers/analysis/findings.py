"""Sentences computed from numbers: what notebook 05 says of client and server latency.

Each function takes the tables the notebooks already show and returns one sentence (or a few)
whose every number, comparison and verdict comes from them — a re-run with other numbers says
something else. Bounds stay bounds: a generator-bound capacity is "≥ X", a ratio built on it
"≥ N×", a dollar figure built on it "≤ $y".
"""

from __future__ import annotations

import itertools

import pandas as pd


def client_latency(per_service: pd.DataFrame) -> str:
    """What k6's client p95 can and cannot say. The client figure adds everything outside the
    handler — k6's own scheduling on a busy 2-core host, the socket, the event loop — so a gap
    between two services' client p95 is only a finding when it is larger than what k6 added
    to either (its client p95 minus the service's own p95 over the same phase)."""
    rows = per_service[["client_p95_ms", "server_p95_ms"]].dropna()
    if len(rows) < 2:
        return "Too few services with both a client and a server p95 to compare."
    added = (rows["client_p95_ms"] - rows["server_p95_ms"]).clip(lower=0)
    said = [
        f"{s} client {r.client_p95_ms:.2f} ms vs server {r.server_p95_ms:.2f} ms "
        f"(+{added[s]:.2f} outside the handler)"
        for s, r in rows.iterrows()
    ]
    ranked = rows["client_p95_ms"].sort_values()
    verdicts = []
    for (a, pa), (b, pb) in itertools.pairwise(ranked.items()):
        floor = max(added[a], added[b])
        if pb - pa > floor:
            verdicts.append(f"{a} is faster than {b} as the client sees it ({pb - pa:.2f} ms)")
        else:
            verdicts.append(
                f"{a} and {b} cannot be told apart from the client ({pb - pa:.2f} ms apart, "
                f"less than the {floor:.2f} ms k6 adds)"
            )
    return "; ".join(said) + ". " + "; ".join(verdicts) + "."
