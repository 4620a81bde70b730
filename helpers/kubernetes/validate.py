"""Every generated object checked offline: Kubernetes' own schemas, and k6-operator's CRD.

Built-in kinds go through `kubernetes-validate` (it bundles the schemas of each Kubernetes
release) in strict mode: an unknown field is an error, as with `kubectl apply
--validate=strict`. A TestRun is checked against the `openAPIV3Schema` of k6-operator's CRD
with `jsonschema`, with unknown fields refused the same way (the API server would prune them
silently, so a misspelt `paralellism` would otherwise pass). The CRD is the unmodified file of
the pinned k6-operator release, kept gzipped in deploy/kubernetes/crd/ because no registry
reachable here serves it (the Go module proxy refuses github.com/grafana/k6-operator); its
sha256 is checked before use. Every pod an object makes (a Deployment's, a TestRun's runner,
initializer and starter) must also pass the restricted Pod Security Standard (`restricted`).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from helpers import paths
from helpers.kubernetes import restricted

KUBERNETES_VERSION = "1.37.0"  # the newest release kubernetes-validate 1.37.0 bundles
K6_OPERATOR_VERSION = "v1.6.0"
K6_OPERATOR_COMMIT = "cf0ae21f4e26b0dd0f99d763ae72e063b4384f2a"
CRD_UPSTREAM_PATH = "config/crd/bases/k6.io_testruns.yaml"
CRD_FILE = (
    paths.REPO_ROOT
    / "deploy"
    / "kubernetes"
    / "crd"
    / f"k6.io_testruns.{K6_OPERATOR_VERSION}.yaml.gz"
)
CRD_SHA256 = "d4df597bb94d210bcb9368dd4faf81da25c08194e240da98e4df8887563be185"


class InvalidManifest(ValueError):
    """An object the cluster would refuse; the message names the object and the field."""


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


@cache
def testrun_schema() -> dict[str, Any]:
    """The TestRun schema of the pinned CRD, with unknown fields refused."""
    raw = gzip.decompress(CRD_FILE.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CRD_SHA256:
        raise RuntimeError(f"{CRD_FILE} has sha256 {digest}, not the pinned {CRD_SHA256}")
    crd = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 280 kB
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def _closed(schema: Any) -> Any:
    """additionalProperties: false wherever the CRD lists properties and keeps no others."""
    if isinstance(schema, dict):
        for value in schema.values():
            _closed(value)
        open_ended = schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and "additionalProperties" not in schema and not open_ended:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _closed(item)
    return schema


def check_testrun(obj: dict[str, Any]) -> None:
    body = {k: v for k, v in obj.items() if k != "metadata"}  # metadata is ObjectMeta's
    meta = obj.get("metadata", {})
    validator = jsonschema.Draft7Validator(testrun_schema())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top)"
        raise InvalidManifest(f"{_name(obj)}: {where}: {first.message}")
    if not meta.get("name"):
        raise InvalidManifest(f"{_name(obj)}: metadata.name is required")


def check_restricted(obj: dict[str, Any]) -> None:
    """InvalidManifest naming every pod of `obj` that breaks the restricted standard, and how."""
    problems = [f"{where}: {problem}" for where, pod in restricted.pods(obj)
                for problem in restricted.violations(pod)]  # fmt: skip
    if problems:
        raise InvalidManifest("not restricted (Pod Security Standards): " + "; ".join(problems))


def check(obj: dict[str, Any]) -> None:
    """Raise InvalidManifest if the cluster would refuse `obj` (offline; no API server), or if
    a pod it makes is not restricted."""
    if obj.get("apiVersion") == "k6.io/v1alpha1" and obj.get("kind") == "TestRun":
        check_testrun(obj)
        check_restricted(obj)
        return
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(top)"
        raise InvalidManifest(f"{_name(obj)}: {where}: {error.message}") from None
    except kubernetes_validate.SchemaNotFoundError:
        raise InvalidManifest(
            f"{_name(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in "
            f"Kubernetes {KUBERNETES_VERSION}"
        ) from None
    check_restricted(obj)


def check_all(objects: list[dict[str, Any]]) -> int:
    for obj in objects:
        check(obj)
    return len(objects)
