"""Write the shared contract vectors (services/CONTRACT.md) as JSON next to this file.

    .venv/bin/python tests/contract/generate_vectors.py [artifacts/manifest.json]

- `instances.json`: the instances whose predictions must equal in-process scikit-learn
  (iris itself, edge rows, every pattern of missing features, seeded random rows drawn within
  the manifest's `feature_ranges`). Expected outputs are *not* stored: the tests compute them
  from the pickled pipeline, so the vectors stay valid when the model is retrained.
- `requests.json`: raw HTTP requests with the answer the contract fixes — `errors` (status,
  code, field — a list where a body has several mistakes and any of them may be named —, Allow),
  `accepted` (200, predictions compared with scikit-learn and, numerically within 1e-6, across
  services) and `unspecified` (the contract fixes nothing; the three services must agree).

The JSON files are the shared data (the Python suite reads them; the Go tests and k6 may too);
this script only makes them reproducible. `tests/integration/test_contract.py` fails if the
committed files differ from what this script generates.

A request's `body` is one of:
  {"json": value}                 compact JSON text of value (no spaces)
  {"text": "..."}                 these characters, UTF-8 encoded
  {"base64": "..."}               these bytes (bodies that are not UTF-8)
  {"padded": {"json": v, "size": n}}     JSON of the object v with spaces inserted before its
                                         closing brace so the body is exactly n bytes (valid JSON)
  {"repeat": {"text": s, "size": n}}     s repeated, cut to exactly n bytes
  {"batch": {"cycle": [i, ...], "count": n}}   {"instances": [...]} with n items, cycling
absent = empty body. `"chunked": true` sends the body without Content-Length.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris

HERE = Path(__file__).resolve().parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SEED = 20251124
N_RANDOM = 200
MISSING_PROBABILITY = 0.1
FLOAT32_MAX = "3.4028234663852886e38"
# CONTRACT.md, Telemetry: the histogram boundaries every service must use.
LATENCY_BUCKETS_S = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
]  # fmt: skip
JSON = {"Content-Type": "application/json"}
MAX_BODY = 65536
MAX_BATCH = 1024
MAX_DEPTH = 64
PROBABILITY_AGREEMENT = 1e-6  # across services, compared as numbers (their text is free)

# ---------------------------------------------------------------------------------------------
# instances.json


def _instance(values: list[float | None], missing_as: str = "absent") -> dict[str, Any]:
    """Row → instance; None is missing, written as an absent key or as null."""
    out: dict[str, Any] = {}
    for name, value in zip(FEATURES, values, strict=True):
        if value is None:
            if missing_as == "null":
                out[name] = None
        else:
            out[name] = value
    return out


def _iris_rows() -> list[dict[str, Any]]:
    X = load_iris().data
    return [_instance([float(v) for v in row]) for row in X]


def _missing_rows() -> list[dict[str, Any]]:
    """Every subset of missing features (none … all four), absent and null, on two rows."""
    bases = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    rows = []
    for base in bases:
        for missing_as in ("absent", "null"):
            for mask in range(16):
                values = [None if mask >> i & 1 else v for i, v in enumerate(base)]
                rows.append(_instance(values, missing_as))
    return rows


def _edge_rows(ranges: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    lo = [ranges[f]["min"] for f in FEATURES]
    hi = [ranges[f]["max"] for f in FEATURES]
    mid = [round((a + b) / 2, 6) for a, b in zip(lo, hi, strict=True)]
    rows = [lo, hi, mid, [0, 0, 0, 0], [1, 1, 1, 1], [-1, -1, -1, -1], [10, 10, 10, 10]]
    rows += [[lo[0], hi[1], lo[2], hi[3]], [hi[0], lo[1], hi[2], lo[3]]]
    # One feature far outside the training range, the others missing (imputed): still finite
    # in float32 all the way through the ONNX graph (see the float32_max vector for the limit).
    for value in (-100.0, 100.0, 1e6, -1e6, 1e20, 1e37, -1e37, 1.4e-45, -0.0):
        for i in range(4):
            row: list[float | None] = [None] * 4
            row[i] = value
            rows.append(row)
    return [_instance(row) for row in rows]


def _random_rows(ranges: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    rows = []
    for n in range(N_RANDOM):
        values: list[float | None] = []
        for name in FEATURES:
            value = float(rng.uniform(ranges[name]["min"], ranges[name]["max"]))
            # Half look like iris (one decimal), half carry full float64 precision.
            values.append(round(value, 1) if n % 2 == 0 else value)
        missing = rng.random(4) < MISSING_PROBABILITY
        values = [None if m else v for v, m in zip(values, missing, strict=True)]
        rows.append(_instance(values, "null" if rng.random() < 0.5 else "absent"))
    return rows


def build_instances(feature_ranges: dict[str, dict[str, float]]) -> dict[str, Any]:
    ranges = {
        f: {"min": feature_ranges[f]["min"], "max": feature_ranges[f]["max"]} for f in FEATURES
    }
    groups = {
        "iris": _iris_rows(),
        "missing": _missing_rows(),
        "edge": _edge_rows(ranges),
        "random": _random_rows(ranges),
    }
    return {
        "about": "Instances whose predictions must equal in-process scikit-learn (labels "
        "identical, probabilities within 1e-5). Absent key or null = missing.",
        "generator": "tests/contract/generate_vectors.py",
        "feature_names": FEATURES,
        "random": {"seed": SEED, "count": N_RANDOM, "feature_ranges": ranges},
        "groups": groups,
    }


# ---------------------------------------------------------------------------------------------
# requests.json


def _req(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    content_type: str | None = "application/json",
    chunked: bool = False,
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "path": path, "headers": {}}
    if content_type is not None:
        request["headers"]["Content-Type"] = content_type
    if body is not None:
        request["body"] = body
    if chunked:
        request["chunked"] = True
    return request


def _err(
    vid: str, row: int, about: str, request: dict, status: int, code: str, **extra: Any
) -> dict[str, Any]:
    """An error vector; `field` is the field to name, or a list: a body with several mistakes
    (of the same, highest-ranked class), and the service may name any of them."""
    expect = {"status": status, "code": code, "field": extra.pop("field", None)}
    expect.update(extra)
    return {"id": vid, "row": row, "about": about, "request": request, "expect": expect}


SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
B64 = lambda raw: {"base64": base64.b64encode(raw).decode()}  # noqa: E731


def _errors() -> list[dict[str, Any]]:
    one = {"json": SETOSA}
    batch1 = {"json": {"instances": [SETOSA]}}
    e: list[dict[str, Any]] = []
    # 1 — no such route
    for vid, method, path in [
        ("get_unknown_path", "GET", "/nope"),
        ("get_root", "GET", "/"),
        ("post_unknown_path", "POST", "/nope"),
        ("post_predict_trailing_slash", "POST", "/predict/"),
        ("post_predict_wrong_case", "POST", "/Predict"),
        ("post_predict_batch_extra_segment", "POST", "/predict/batch/1"),
        ("get_metrics_on_api_port", "GET", "/metrics"),
    ]:
        body = one if method == "POST" else None
        e.append(
            _err(vid, 1, f"{method} {path} is no route", _req(method, path, body), 404, "not_found")
        )
    # 2 — route exists, other method
    for vid, method, path, allow in [
        ("get_predict", "GET", "/predict", "POST"),
        ("get_predict_batch", "GET", "/predict/batch", "POST"),
        ("put_predict", "PUT", "/predict", "POST"),
        ("patch_predict", "PATCH", "/predict", "POST"),
        ("delete_predict_batch", "DELETE", "/predict/batch", "POST"),
        ("post_healthz", "POST", "/healthz", "GET"),
        ("delete_healthz", "DELETE", "/healthz", "GET"),
    ]:
        body = one if method in ("PUT", "PATCH", "POST") else None
        e.append(
            _err(
                vid,
                2,
                f"{method} {path}: only {allow} is allowed",
                _req(method, path, body),
                405,
                "method_not_allowed",
                allow=allow,
            )
        )
    e.append(
        _err(
            "get_predict_text_plain",
            2,
            "405 is checked before the content type",
            _req("GET", "/predict", {"text": "hello"}, "text/plain"),
            405,
            "method_not_allowed",
            allow="POST",
        )
    )
    e.append(
        _err(
            "put_predict_oversized_body",
            2,
            "405 is checked before the body size",
            _req("PUT", "/predict", {"padded": {"json": SETOSA, "size": 70000}}),
            405,
            "method_not_allowed",
            allow="POST",
        )
    )
    # 3 — content type
    for path, body in (("/predict", one), ("/predict/batch", batch1)):
        tag = "predict" if path == "/predict" else "batch"
        for vid, ctype in [
            ("no_content_type", None),
            ("empty_content_type", ""),
            ("text_plain", "text/plain"),
            ("form_urlencoded", "application/x-www-form-urlencoded"),
            ("text_json", "text/json"),
            ("application_jsonx", "application/jsonx"),
            ("json_patch", "application/json-patch+json"),
        ]:
            e.append(
                _err(
                    f"{tag}_{vid}",
                    3,
                    f"Content-Type {ctype!r} is not application/json",
                    _req("POST", path, body, ctype),
                    415,
                    "unsupported_media_type",
                )
            )
    e.append(
        _err(
            "text_plain_oversized_body",
            3,
            "415 is checked before the body size",
            _req("POST", "/predict", {"repeat": {"text": "x", "size": 70000}}, "text/plain"),
            415,
            "unsupported_media_type",
        )
    )
    e.append(
        _err(
            "text_plain_invalid_json",
            3,
            "415 is checked before parsing",
            _req("POST", "/predict", {"text": "{not json"}, "text/plain"),
            415,
            "unsupported_media_type",
        )
    )
    # 4 — body size
    for vid, path, body, chunked, about in [
        (
            "predict_body_65537_bytes",
            "/predict",
            {"padded": {"json": SETOSA, "size": MAX_BODY + 1}},
            False,
            "one byte over 64 KiB",
        ),
        (
            "batch_body_65537_bytes",
            "/predict/batch",
            {"padded": {"json": {"instances": [SETOSA]}, "size": MAX_BODY + 1}},
            False,
            "one byte over 64 KiB",
        ),
        (
            "predict_body_1mib",
            "/predict",
            {"padded": {"json": SETOSA, "size": 1 << 20}},
            False,
            "1 MiB",
        ),
        (
            "predict_garbage_70000_bytes",
            "/predict",
            {"repeat": {"text": "x", "size": 70000}},
            False,
            "413 is checked before parsing",
        ),
        (
            "batch_1024_full_instances",
            "/predict/batch",
            {"batch": {"cycle": [SETOSA], "count": MAX_BATCH}},
            False,
            "1024 four-feature instances do not fit in 64 KiB",
        ),
        (
            "predict_chunked_70000_bytes",
            "/predict",
            {"padded": {"json": SETOSA, "size": 70000}},
            True,
            "no Content-Length: the limit holds for what arrives",
        ),
        (
            "batch_chunked_70000_bytes",
            "/predict/batch",
            {"padded": {"json": {"instances": [{}]}, "size": 70000}},
            True,
            "no Content-Length: the limit holds for what arrives",
        ),
    ]:
        e.append(
            _err(vid, 4, about, _req("POST", path, body, chunked=chunked), 413, "payload_too_large")
        )
    # 5 — not RFC 8259 JSON
    texts = [
        ("empty_body", None),
        ("whitespace_only", " \n\t "),
        ("truncated_object", '{"sepal_length": 5.1'),
        ("lone_brace", "{"),
        ("nan_token", '{"sepal_length": NaN}'),
        ("lowercase_nan_token", '{"sepal_length": nan}'),
        ("infinity_token", '{"sepal_length": Infinity}'),
        ("negative_infinity_token", '{"sepal_length": -Infinity}'),
        ("trailing_garbage", '{"sepal_length": 5.1} x'),
        ("two_documents", "{}{}"),
        ("trailing_comma", '{"sepal_length": 5.1,}'),
        ("single_quotes", "{'sepal_length': 5.1}"),
        ("unquoted_key", "{sepal_length: 5.1}"),
        ("comment", '{/* note */ "sepal_length": 5.1}'),
        ("leading_zero", '{"sepal_length": 05.1}'),
        ("leading_dot", '{"sepal_length": .5}'),
        ("trailing_dot", '{"sepal_length": 5.}'),
        ("plus_sign", '{"sepal_length": +5.1}'),
        ("hex_number", '{"sepal_length": 0x10}'),
        ("raw_tab_in_string", '{"sepal_length": "5\t1"}'),
        ("invalid_escape", '{"sepal_length": "\\q"}'),
        ("python_none", '{"sepal_length": None}'),
    ]
    for vid, text in texts:
        body = None if text is None else {"text": text}
        e.append(
            _err(vid, 5, "not RFC 8259 JSON", _req("POST", "/predict", body), 400, "invalid_json")
        )
    for vid, raw in [
        ("invalid_utf8_in_key", b'{"sepal_length": 5.1, "\xff": 1}'),
        ("invalid_utf8_in_string", b'{"sepal_length": "\xc3\x28"}'),
        ("utf16_body", '{"sepal_length": 5.1}'.encode("utf-16")),
    ]:
        e.append(_err(vid, 5, "not UTF-8", _req("POST", "/predict", B64(raw)), 400, "invalid_json"))
    e.append(
        _err(
            "batch_nan_token",
            5,
            "NaN inside a batch item",
            _req("POST", "/predict/batch", {"text": '{"instances": [{"petal_width": NaN}]}'}),
            400,
            "invalid_json",
        )
    )
    e.append(
        _err(
            "batch_truncated",
            5,
            "truncated batch",
            _req("POST", "/predict/batch", {"text": '{"instances": [{}, {'}),
            400,
            "invalid_json",
        )
    )
    e.append(
        _err(
            "batch_empty_body",
            5,
            "empty batch body",
            _req("POST", "/predict/batch"),
            400,
            "invalid_json",
        )
    )
    e.append(
        _err(
            "nan_in_unknown_key",
            5,
            "400 is checked before unknown keys (422)",
            _req("POST", "/predict", {"text": '{"typo": NaN}'}),
            400,
            "invalid_json",
        )
    )
    # 5 — I-JSON (RFC 7493) and the nesting limit: rejected by all three, even where the
    # rest of the body would be a 422 (400 outranks it)
    deep = lambda n: "[" * n + "]" * n  # noqa: E731
    for vid, path, text, about in [
        (
            "duplicate_key",
            "/predict",
            '{"sepal_length": 1, "sepal_length": 7}',
            "a duplicated member name (I-JSON)",
        ),
        (
            "duplicate_key_same_value",
            "/predict",
            '{"sepal_length": 1, "sepal_width": 3, "sepal_length": 1}',
            "a duplicated member name, even with the same value",
        ),
        (
            "duplicate_key_by_escape",
            "/predict",
            '{"sepal_length": 1, "sepal\\u005flength": 1}',
            "the same name once escaped",
        ),
        (
            "duplicate_key_inside_unknown_value",
            "/predict",
            '{"typo": {"a": 1, "a": 2}}',
            "a duplicate anywhere outranks the unknown key (422)",
        ),
        (
            "duplicate_key_after_wrong_type",
            "/predict",
            '{"sepal_length": "x", "sepal_length": 1}',
            "a duplicate outranks the wrong type (422) of the first occurrence",
        ),
        (
            "batch_duplicate_key_in_item",
            "/predict/batch",
            '{"instances": [{}, {"petal_width": 1, "petal_width": 2}]}',
            "a duplicated member name in a batch item",
        ),
        (
            "batch_duplicate_instances",
            "/predict/batch",
            '{"instances": [{}], "instances": [{}]}',
            "instances twice",
        ),
        ("lone_surrogate_key", "/predict", '{"\\ud800": 1}', "an escaped lone surrogate (I-JSON)"),
        (
            "lone_surrogate_value",
            "/predict",
            '{"sepal_length": "\\udc00"}',
            "an escaped lone surrogate outranks the wrong type (422)",
        ),
        ("nesting_65_levels", "/predict", deep(MAX_DEPTH + 1), "65 arrays inside each other"),
        (
            "nesting_65_levels_of_objects",
            "/predict",
            '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
            "65 objects inside each other",
        ),
        (
            "nesting_65_levels_in_feature",
            "/predict",
            f'{{"petal_width": {deep(MAX_DEPTH)}}}',
            "too deep outranks the wrong type (422)",
        ),
        (
            "batch_nesting_65_levels_in_item",
            "/predict/batch",
            f'{{"instances": [{{"typo": {deep(MAX_DEPTH - 2)}}}]}}',
            "body, instances, item and 62 arrays",
        ),
        ("nesting_5000_levels", "/predict", deep(5000), "beyond Python's recursion limit"),
        (
            "nan_after_unknown_key",
            "/predict",
            '{"typo": 1, "sepal_length": NaN}',
            "a syntax error after a 422 still answers 400",
        ),
        (
            "trailing_garbage_after_wrong_type",
            "/predict",
            '{"sepal_length": "x"} x',
            "a syntax error after a 422 still answers 400",
        ),
    ]:
        e.append(_err(vid, 5, about, _req("POST", path, {"text": text}), 400, "invalid_json"))
    bom = B64(b"\xef\xbb\xbf" + json.dumps(SETOSA).encode())
    e.append(
        _err(
            "utf8_bom",
            5,
            "a UTF-8 byte-order mark",
            _req("POST", "/predict", bom),
            400,
            "invalid_json",
        )
    )
    # 6 — top level not an object
    for path in ("/predict", "/predict/batch"):
        tag = "predict" if path == "/predict" else "batch"
        for vid, text in [
            ("array", "[]"),
            ("array_of_instance", '[{"sepal_length": 5.1}]'),
            ("string", '"sepal_length"'),
            ("number", "5.1"),
            ("null", "null"),
            ("true", "true"),
            ("nesting_64_levels", "[" * MAX_DEPTH + "]" * MAX_DEPTH),
        ]:
            e.append(
                _err(
                    f"{tag}_top_level_{vid}",
                    6,
                    "the top-level value is not an object",
                    _req("POST", path, {"text": text}),
                    422,
                    "validation_error",
                )
            )
    # 7 — unknown key
    for vid, text, field in [
        ("typo", '{"sepal_lenght": 5.1, "sepal_width": 3.5}', "sepal_lenght"),
        ("wrong_case", '{"Sepal_Length": 5.1}', "Sepal_Length"),
        (
            "extra_key_after_features",
            '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, '
            '"species": "setosa"}',
            "species",
        ),
        ("unknown_key_null", '{"petal_widht": null}', "petal_widht"),
        ("two_unknown_keys", '{"sepal_length": 5.1, "zzz": 1, "aaa": 2}', ["zzz", "aaa"]),
        ("leading_space_key", '{" sepal_length": 5.1}', " sepal_length"),
        ("non_ascii_key", '{"s\u00e9pal_length": 5.1}', "s\u00e9pal_length"),
        ("instances_on_single_route", '{"instances": [{"sepal_length": 5.1}]}', "instances"),
        ("surrogate_pair_key", '{"\\ud83d\\ude00": 1}', "\U0001f600"),
        (
            "nesting_64_levels_in_unknown_value",
            f'{{"typo": {"[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)}}}',
            "typo",
        ),
    ]:
        e.append(
            _err(
                f"unknown_key_{vid}",
                7,
                "an unknown key is rejected, never imputed",
                _req("POST", "/predict", {"text": text}),
                422,
                "validation_error",
                field=field,
            )
        )
    for vid, text, field in [
        ("in_item", '{"instances": [{}, {"petal_widht": 1.0}]}', "instances[1].petal_widht"),
        ("top_level", '{"instances": [{}], "extra": 1}', "extra"),
        ("instances_typo", '{"instance": [{}]}', ["instance", "instances"]),
        ("features_at_top_level", '{"sepal_length": 5.1}', ["sepal_length", "instances"]),
        (
            "two_items",
            '{"instances": [{}, {}, {"b": 1}, {"a": 1}]}',
            ["instances[2].b", "instances[3].a"],
        ),
    ]:
        e.append(
            _err(
                f"batch_unknown_key_{vid}",
                7,
                "an unknown key in a batch",
                _req("POST", "/predict/batch", {"text": text}),
                422,
                "validation_error",
                field=field,
            )
        )
    # 8 — not a number or null
    for feature in FEATURES:
        e.append(
            _err(
                f"string_number_{feature}",
                8,
                'no coercion: "5.1" is rejected',
                _req("POST", "/predict", {"text": f'{{"{feature}": "5.1"}}'}),
                422,
                "validation_error",
                field=feature,
            )
        )
    for vid, value in [
        ("true", "true"),
        ("false", "false"),
        ("object", "{}"),
        ("array", "[5.1]"),
        ("empty_string", '""'),
        ("nan_string", '"NaN"'),
    ]:
        e.append(
            _err(
                f"wrong_type_{vid}",
                8,
                f"a feature may not be {value}",
                _req(
                    "POST", "/predict", {"text": f'{{"sepal_width": 3.5, "petal_length": {value}}}'}
                ),
                422,
                "validation_error",
                field="petal_length",
            )
        )
    e.append(
        _err(
            "wrong_type_two_fields",
            8,
            "two wrong types: either may be named",
            _req("POST", "/predict", {"text": '{"petal_width": "x", "sepal_length": "y"}'}),
            422,
            "validation_error",
            field=["petal_width", "sepal_length"],
        )
    )
    for vid, text, field in [
        (
            "in_item",
            '{"instances": [{"sepal_length": 5.1}, {"sepal_width": "3"}]}',
            "instances[1].sepal_width",
        ),
        (
            "two_items",
            '{"instances": [{}, {"petal_width": true}, {"sepal_length": "a"}]}',
            ["instances[1].petal_width", "instances[2].sepal_length"],
        ),
        (
            "nesting_64_levels",
            '{"instances": [{"petal_width": ' + "[" * 61 + "]" * 61 + "}]}",
            "instances[0].petal_width",
        ),
    ]:
        e.append(
            _err(
                f"batch_wrong_type_{vid}",
                8,
                "a wrong type in a batch item",
                _req("POST", "/predict/batch", {"text": text}),
                422,
                "validation_error",
                field=field,
            )
        )
    # 9 — outside the finite float32 range
    for vid, literal in [
        ("1e39", "1e39"),
        ("minus_1e39", "-1e39"),
        ("3.5e38", "3.5e38"),
        ("just_above_float32_max", "3.4028235e38"),
        ("minus_just_above_float32_max", "-3.4028235e38"),
        ("1e400", "1e400"),
        ("minus_1e400", "-1e400"),
        ("integer_1e39", "1" + "0" * 39),
        ("integer_400_digits", "9" * 400),
    ]:
        e.append(
            _err(
                f"out_of_float32_{vid}",
                9,
                f"{literal[:20]} is beyond float32",
                _req(
                    "POST",
                    "/predict",
                    {"text": f'{{"sepal_length": 5.1, "petal_width": {literal}}}'},
                ),
                422,
                "validation_error",
                field="petal_width",
            )
        )
    e.append(
        _err(
            "batch_out_of_float32",
            9,
            "beyond float32 in a batch item",
            _req("POST", "/predict/batch", {"text": '{"instances": [{}, {"petal_length": 1e39}]}'}),
            422,
            "validation_error",
            field="instances[1].petal_length",
        )
    )
    # 10 — batch shape
    for vid, body, field in [
        ("instances_absent", {"text": "{}"}, "instances"),
        ("instances_null", {"text": '{"instances": null}'}, "instances"),
        ("instances_object", {"text": '{"instances": {}}'}, "instances"),
        ("instances_string", {"text": '{"instances": "abc"}'}, "instances"),
        ("instances_number", {"text": '{"instances": 3}'}, "instances"),
        ("empty", {"text": '{"instances": []}'}, "instances"),
        ("1025_items", {"batch": {"cycle": [{}], "count": MAX_BATCH + 1}}, "instances"),
        ("2000_items", {"batch": {"cycle": [{}], "count": 2000}}, "instances"),
        ("item_number", {"text": '{"instances": [1]}'}, "instances[0]"),
        ("item_null", {"text": '{"instances": [{}, null]}'}, "instances[1]"),
        ("item_array", {"text": '{"instances": [{}, []]}'}, "instances[1]"),
        ("item_string", {"text": '{"instances": [{}, {}, "x"]}'}, "instances[2]"),
        ("item_feature_list", {"text": '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'}, "instances[0]"),
    ]:
        e.append(
            _err(
                f"batch_{vid}",
                10,
                "batch: instances must be 1..1024 objects",
                _req("POST", "/predict/batch", body),
                422,
                "validation_error",
                field=field,
            )
        )
    # Several mistakes of different 422 rows: 422, and any of the offending fields is named.
    for vid, path, text, fields in [
        (
            "unknown_key_and_wrong_type",
            "/predict",
            '{"sepal_length": "x", "typo": 1}',
            ["sepal_length", "typo"],
        ),
        (
            "batch_unknown_key_and_wrong_type",
            "/predict/batch",
            '{"instances": [{"sepal_length": "x"}, {"typo": 1}]}',
            ["instances[0].sepal_length", "instances[1].typo"],
        ),
        (
            "wrong_type_and_out_of_range",
            "/predict",
            '{"sepal_length": 1e39, "petal_width": "x"}',
            ["sepal_length", "petal_width"],
        ),
        (
            "batch_unknown_key_and_item_not_object",
            "/predict/batch",
            '{"instances": [1, {"typo": 1}]}',
            ["instances[0]", "instances[1].typo"],
        ),
        (
            "batch_too_many_and_unknown_key",
            "/predict/batch",
            '{"instances": [' + "{}," * MAX_BATCH + '{"typo": 1}]}',
            ["instances", f"instances[{MAX_BATCH}].typo"],
        ),
    ]:
        e.append(
            _err(
                f"several_{vid}",
                7 if "unknown_key" in vid else 8,
                "several 422 mistakes: a 422 naming any of them",
                _req("POST", path, {"text": text}),
                422,
                "validation_error",
                field=fields,
            )
        )
    ids = [v["id"] for v in e]
    assert len(ids) == len(set(ids)), "duplicate vector ids"
    return e


def _accepted() -> list[dict[str, Any]]:
    compact = [
        {"petal_length": 1.4, "petal_width": 0.2},
        {"sepal_length": 6, "petal_length": 4.5},
        {},
        {"petal_width": 2.3, "petal_length": 5.2, "sepal_width": 3},
    ]
    a = []
    for vid, path, body, ctype, chunked, about in [
        (
            "charset_parameter",
            "/predict",
            {"json": SETOSA},
            "application/json; charset=utf-8",
            False,
            "parameters of the media type are fine",
        ),
        (
            "charset_parameter_no_space",
            "/predict/batch",
            {"json": {"instances": [SETOSA]}},
            "application/json;charset=UTF-8",
            False,
            "parameters of the media type are fine",
        ),
        (
            "integer_literals",
            "/predict",
            {"text": '{"sepal_length": 5, "sepal_width": 3, "petal_length": 1, "petal_width": 0}'},
            None,
            False,
            "integers are numbers",
        ),
        (
            "exponent_literals",
            "/predict",
            {
                "text": '{"sepal_length": 5.1e0, "sepal_width": 35E-1, "petal_length": 0.14e+1, '
                '"petal_width": 2e-1}'
            },
            None,
            False,
            "every RFC 8259 number form",
        ),
        (
            "negative_zero",
            "/predict",
            {"text": '{"sepal_length": -0, "petal_width": -0.0}'},
            None,
            False,
            "-0 is a number",
        ),
        (
            "underflow_to_zero",
            "/predict",
            {"text": '{"sepal_length": 1e-400}'},
            None,
            False,
            "tiny magnitudes are inside the float32 range",
        ),
        (
            "whitespace_around",
            "/predict",
            {"text": ' \n{ "sepal_length" : 5.1 ,\t"petal_width" : 0.2 }\r\n '},
            None,
            False,
            "insignificant whitespace",
        ),
        (
            "escaped_key",
            "/predict",
            {"text": '{"sepal\\u005flength": 5.9, "petal\\u005Fwidth": 2}'},
            None,
            False,
            "\\u005f is '_': the key is a feature",
        ),
        (
            "all_null",
            "/predict",
            {"json": dict.fromkeys(FEATURES)},
            None,
            False,
            "all four missing: imputed",
        ),
        ("empty_object", "/predict", {"text": "{}"}, None, False, "all four absent: imputed"),
        (
            "body_exactly_65536_bytes",
            "/predict",
            {"padded": {"json": SETOSA, "size": MAX_BODY}},
            None,
            False,
            "64 KiB exactly is allowed",
        ),
        (
            "batch_body_exactly_65536_bytes",
            "/predict/batch",
            {"padded": {"json": {"instances": [SETOSA, {}]}, "size": MAX_BODY}},
            None,
            False,
            "64 KiB exactly is allowed",
        ),
        (
            "chunked_small_body",
            "/predict",
            {"json": SETOSA},
            None,
            True,
            "no Content-Length is fine",
        ),
        (
            "batch_of_1",
            "/predict/batch",
            {"json": {"instances": [SETOSA]}},
            None,
            False,
            "the smallest batch",
        ),
        (
            "batch_of_1024_compact",
            "/predict/batch",
            {"batch": {"cycle": compact, "count": MAX_BATCH}},
            None,
            False,
            "the largest batch (compact instances fit in 64 KiB)",
        ),
        (
            "batch_of_1024_empty_objects",
            "/predict/batch",
            {"batch": {"cycle": [{}], "count": MAX_BATCH}},
            None,
            False,
            "the largest batch, all imputed",
        ),
        (
            "batch_nulls_and_absent",
            "/predict/batch",
            {"json": {"instances": [{}, {"sepal_length": None}, dict.fromkeys(FEATURES), SETOSA]}},
            None,
            False,
            "missing values in a batch",
        ),
        (
            "query_string_ignored",
            "/predict?debug=1",
            {"json": SETOSA},
            None,
            False,
            "a query string does not change the route",
        ),
    ]:
        request = _req("POST", path, body, ctype or "application/json", chunked)
        a.append({"id": vid, "about": about, "request": request, "expect": {"status": 200}})
    return a


def _model_limits() -> list[dict[str, Any]]:
    """Valid requests (rows 1–10 pass) that the model may be unable to score (row 11).

    abs == float32 max is inside the range, but the ONNX graph computes in float32 and
    overflows; scikit-learn computes in float64 and does not. Each service either answers 200
    with scikit-learn's prediction or 422 naming the instance — never NaN, never 5xx.
    """
    big = f'{{"petal_width": {FLOAT32_MAX}, "sepal_length": -{FLOAT32_MAX}}}'
    return [
        {
            "id": "float32_max",
            "about": "abs == float32 max: valid input, beyond what float32 arithmetic can score",
            "request": _req("POST", "/predict", {"text": big}),
            "expect": {"status": [200, 422], "code": "validation_error", "field": None},
        },
        {
            "id": "float32_max_in_batch",
            "about": "the same instance at index 1 of a batch",
            "request": _req("POST", "/predict/batch", {"text": f'{{"instances": [{{}}, {big}]}}'}),
            "expect": {"status": [200, 422], "code": "validation_error", "field": "instances[1]"},
        },
    ]


def _unspecified() -> list[dict[str, Any]]:
    """Requests the contract leaves open: the services must still agree with each other."""
    u = []
    for vid, request, about in [
        (
            "head_healthz",
            _req("HEAD", "/healthz", content_type=None),
            "HEAD on a GET route (405 by the table, 200 by HTTP custom)",
        ),
        ("options_predict", _req("OPTIONS", "/predict", content_type=None), "OPTIONS"),
        (
            "uppercase_media_type",
            _req("POST", "/predict", {"json": SETOSA}, "APPLICATION/JSON"),
            "media types are case-insensitive (RFC 9110)",
        ),
        (
            "charset_latin1",
            _req("POST", "/predict", {"json": SETOSA}, "application/json; charset=latin-1"),
            "a non-UTF-8 charset",
        ),
    ]:
        u.append({"id": vid, "about": about, "request": request})
    return u


def build_requests() -> dict[str, Any]:
    return {
        "about": "Raw requests and the answers services/CONTRACT.md fixes. `row` is the row of "
        "its Errors table; `expect.field` null means the error body has no field; `expect.allow` "
        "is a method the Allow header must list. Body encodings: see the generator's docstring.",
        "generator": "tests/contract/generate_vectors.py",
        "limits": {
            "max_body_bytes": MAX_BODY,
            "max_batch": MAX_BATCH,
            "max_depth": MAX_DEPTH,
            "float32_max": FLOAT32_MAX,
            "probability_agreement": PROBABILITY_AGREEMENT,
            "latency_buckets_s": LATENCY_BUCKETS_S,
        },
        "errors": _errors(),
        "accepted": _accepted(),
        "model_limits": _model_limits(),
        "unspecified": _unspecified(),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    manifest_path = Path(argv[0]) if argv else HERE.parents[1] / "artifacts" / "manifest.json"
    ranges = json.loads(manifest_path.read_text())["feature_ranges"]
    (HERE / "instances.json").write_text(render(build_instances(ranges)))
    (HERE / "requests.json").write_text(render(build_requests()))
    print(f"wrote {HERE / 'instances.json'} and {HERE / 'requests.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
