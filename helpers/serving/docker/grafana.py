"""Grafana's admin login when the docker backend starts Grafana: never admin/admin.

docker-compose.yaml gives GRAFANA_ADMIN_PASSWORD no default and Grafana's entrypoint refuses an
empty one or "admin". When the caller set none, the backend makes one for this run (random,
from `secrets`) and writes it, readable by the caller only, beside stack.json — so the study
starts Grafana as before and whoever ran it can log in. A password the caller set is used as
it is and written nowhere.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PASSWORD_VARIABLE = "GRAFANA_ADMIN_PASSWORD"
USER_VARIABLE = "GRAFANA_ADMIN_USER"
DEFAULT_USER = "admin"  # compose's default for GRAFANA_ADMIN_USER
PASSWORD_FILE = "grafana-admin-password"


def login(env: dict[str, str], stack_dir: Path) -> tuple[dict[str, str], Path | None]:
    """(variables to add to compose's environment, the file the password was written to or
    None when the caller's own GRAFANA_ADMIN_PASSWORD is used). "admin" is refused here too,
    before anything starts, rather than by Grafana's container later."""
    given = env.get(PASSWORD_VARIABLE, "")
    if given == "admin":
        raise ValueError(f"{PASSWORD_VARIABLE}=admin is refused: choose another password, or "
                         "unset it and the run makes one")  # fmt: skip
    if given:
        return {}, None
    path = Path(stack_dir) / PASSWORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was there with wider rights
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")
    return {PASSWORD_VARIABLE: password}, path


def user(env: dict[str, str]) -> str:
    return env.get(USER_VARIABLE) or DEFAULT_USER


def ready(url: str, env: dict[str, str], password_file: Path | None) -> str:
    """The line that says where Grafana is and where its password is kept."""
    where = password_file or f"${PASSWORD_VARIABLE}"
    return f"Grafana {url}: user {user(env)}, password in {where}"
