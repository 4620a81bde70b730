"""Which image each compose variable uses on this machine, and why (`STUDY_DOCKER_IMAGES`).

- `registry`: the compose file's pinned images (or the user's `*_IMAGE` variables), pulled if
  missing; a missing required image is an error.
- `local`: the local stand-ins of `helpers.serving.docker.standins.images` wherever one exists
  (debootstrap + this host's binaries, no registry at all).
- `auto` (default): `registry` where it works; an image that is neither present nor pullable
  is replaced by its stand-in, and the log says so. A user's `*_IMAGE` variable is used as given.
An optional service (collector, cAdvisor, Grafana) whose image cannot be had is left out; the
stack then uses the scrape override / the host cgroup exporter instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

IMAGES_ENV = "STUDY_DOCKER_IMAGES"
IMAGE_MODES = ("auto", "registry", "local")
# Where compose uses each image variable: (service, its build arg), or (service, None) for the
# service's own image. `compose config` says what each resolves to.
IMAGE_PLACES: dict[str, tuple[str, str | None]] = {
    "PYTHON_IMAGE": ("python-api-pkl", "PYTHON_IMAGE"),
    "GO_IMAGE": ("go-api-onnx", "GO_IMAGE"),
    "DEBIAN_IMAGE": ("go-api-onnx", "RUNTIME_IMAGE"),
    "PROMETHEUS_IMAGE": ("prometheus", None),
    "K6_IMAGE": ("k6", None),
    "OTEL_COLLECTOR_IMAGE": ("otel-collector", None),
    "CADVISOR_IMAGE": ("cadvisor", None),
    "GRAFANA_IMAGE": ("grafana", None),
}
REQUIRED_IMAGES = ("PYTHON_IMAGE", "GO_IMAGE", "DEBIAN_IMAGE", "PROMETHEUS_IMAGE", "K6_IMAGE")
OPTIONAL_SERVICES = {"otel-collector": "OTEL_COLLECTOR_IMAGE", "cadvisor": "CADVISOR_IMAGE",
                     "grafana": "GRAFANA_IMAGE"}  # fmt: skip


class ImageChoiceError(RuntimeError):
    """A required image cannot be had; the message says how to provide it."""


def pinned_images(config: dict[str, Any]) -> dict[str, str]:
    """Variable -> image name, read from `compose config` (the user's variables applied)."""
    found = {}
    for variable, (service, build_arg) in IMAGE_PLACES.items():
        spec = config["services"][service]
        found[variable] = spec["build"]["args"][build_arg] if build_arg else spec["image"]
    return found


def _available(client: Any, name: str, pull: bool) -> tuple[bool, str]:
    import docker.errors

    try:
        client.images.get(name)
        return True, "present"
    except docker.errors.ImageNotFound:
        if not pull:
            return False, "absent (not pulled)"
    try:
        client.images.pull(name)
    except docker.errors.DockerException as error:
        reason = str(getattr(error, "explanation", None) or error).splitlines()[0][:200]
        return False, f"cannot be pulled: {reason}"
    return True, "pulled"


def choose_images(
    client: Any,
    pinned: dict[str, str],
    stand_ins: tuple[str, ...],
    mode: str | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(chosen images, reasons, stand-ins to make) for the compose variables in `pinned`;
    `stand_ins` are the variables a local stand-in exists for. Nothing is made here."""
    environ = dict(os.environ if environ is None else environ)
    mode = mode or environ.get(IMAGES_ENV) or "auto"
    if mode not in IMAGE_MODES:
        raise ImageChoiceError(f"{IMAGES_ENV}={mode!r}: expected one of {', '.join(IMAGE_MODES)}")
    chosen: dict[str, str] = {}
    reasons: dict[str, str] = {}
    make: list[str] = []
    for variable, name in pinned.items():
        explicit = bool(environ.get(variable))
        replaceable = variable in stand_ins and not explicit and mode != "registry"
        if mode == "local" and replaceable:
            make.append(variable)
            reasons[variable] = f"local stand-in ({IMAGES_ENV}=local)"
            continue
        ok, why = _available(client, name, pull=mode != "local")
        if ok:
            chosen[variable] = name
            reasons[variable] = f"{name}: {why}"
        elif replaceable:
            make.append(variable)
            reasons[variable] = f"local stand-in: {name} {why}"
        elif variable in REQUIRED_IMAGES:
            raise ImageChoiceError(
                f"image {name} ({variable}) is {why}. Make it available (docker pull / docker "
                f"load), point {variable} at a mirror, or set {IMAGES_ENV}=local to build local "
                "stand-ins without a registry"
            )
        else:
            reasons[variable] = f"{name}: {why} — its service is left out"
    return chosen, reasons, make


def resolve_images(
    client: Any, pinned: dict[str, str], mode: str | None, log: Callable[[str], None]
) -> tuple[dict[str, str], dict[str, str]]:
    """`choose_images` with the stand-ins it asks for made (cached), every choice logged."""
    from helpers.serving.docker.standins import images

    chosen, reasons, make = choose_images(client, pinned, tuple(images.STAND_INS), mode)
    if make:
        log(f"making local stand-in images for {', '.join(make)} (cached)")
        made = images.prepare(client, which=make)
        chosen |= made
        reasons |= {variable: f"{made[variable]} ({reasons[variable]})" for variable in make}
    for variable, reason in reasons.items():
        log(f"{variable:<21} {reason}")
    return chosen, reasons
