"""What a docker stack will run, decided before anything starts: its instances, their model
folders (checked), the host port of each (`helpers.serving.ports`' one policy), and the
environment compose runs with.

An instance named like one of the compose file's APIs keeps that service's port variable
(`PYTHON_API_ONNX_PORT`, the seed's 5002 by default); every other instance gets a free port.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from helpers.serving import ports
from helpers.serving.docker.engine import DockerEngine, EngineUnavailable
from helpers.serving.docker.standins import private_engine
from helpers.serving.instances import Instance, check_unique, default_instances

INFRASTRUCTURE_PORTS = ("prometheus", "grafana")


def choose_instances(
    instances: list[Instance] | None,
    services: list[str] | None,
    service_env: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, Instance]:
    """name → instance: `instances` as given, else one per service (`default_instances`)."""
    if instances is not None and (services is not None or service_env):
        raise ValueError("give instances, or services/service_env: not both")
    return check_unique(instances or default_instances(services, service_env))


def check_model_folders(instances: Mapping[str, Instance], artifacts_dir: Path) -> None:
    """FileNotFoundError naming the first model folder without a manifest.json."""
    folders = {"the stack": artifacts_dir}
    folders |= {name: i.artifacts_dir for name, i in instances.items() if i.artifacts_dir}
    for owner, folder in folders.items():
        manifest = Path(folder) / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{manifest} not found ({owner}'s model): train the model first (notebook 01)"
            )


def host_ports(
    instances: Mapping[str, Instance], requested: dict[str, int] | None
) -> dict[str, int]:
    """Every port the stack publishes on 127.0.0.1, by instance name, "prometheus", "grafana"."""
    named = [name for name, instance in instances.items() if name == instance.service]
    return ports.resolve(
        named=[*named, *INFRASTRUCTURE_PORTS],
        free=[name for name in instances if name not in named],
        requested=requested,
    )


def compose_environment(
    engine: DockerEngine,
    engine_info: Mapping[str, object],
    artifacts_dir: Path,
    host_ports: Mapping[str, int],
    bind_address: str,
) -> dict[str, str]:
    """What compose reads: the engine, the stack's model folder, the compose file's port
    variables (the named ports only), and — for cAdvisor — the engine's own socket and
    data-root (a private engine's are not the defaults)."""
    env = engine.environment() | {"ARTIFACTS_DIR": str(artifacts_dir)}
    named = {key: port for key, port in host_ports.items() if key in ports.DEFAULTS}
    env |= {"BIND_ADDRESS": bind_address} | {ports.variable(k): str(p) for k, p in named.items()}
    env.setdefault("DOCKER_DATA_ROOT", str(engine_info.get("DockerRootDir", "")))
    if engine.host.startswith("unix://"):
        env.setdefault("DOCKER_SOCKET_PATH", engine.host.removeprefix("unix://"))
    return env


def acquire_engine() -> DockerEngine:
    """A running engine borrowed, or a private one started; a clear error without either."""
    try:
        return private_engine.ensure_engine()
    except EngineUnavailable as error:
        raise EngineUnavailable(
            f"the docker backend needs a Docker engine: {error}. Start Docker (or run as "
            "root where dockerd is installed), or use backend='local'"
        ) from error
