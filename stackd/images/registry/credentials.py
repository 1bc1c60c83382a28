"""Registry credentials and insecure-registry settings from docker-style config.json files.

stackd's own file (`$STACKD_CONFIG`, else `~/.config/stackd/config.json`, written by
`stackd login`) is read first, then Docker's (`$DOCKER_CONFIG/config.json`, else
`~/.docker/config.json`). Both use Docker's shape: `{"auths": {"host": {"auth":
base64("user:password")}}}`; stackd's may also hold `"insecure-registries": [host…]`.
Credential helpers (`credsStore`) are not consulted.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackd.images.errors import RegistryAuthError

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str


def stackd_config_path() -> Path:
    if os.environ.get("STACKD_CONFIG"):
        return Path(os.environ["STACKD_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "stackd" / "config.json"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return Path(base) / "config.json"


def _load(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryAuthError(
            f"cannot read registry config {path}: {exc}",
            hint="fix or remove the file, then run `stackd login` again",
        ) from exc


def _auth_keys(domain: str) -> tuple[str, ...]:
    if domain == "docker.io":
        return (DOCKER_HUB_AUTH_KEY, "docker.io", "index.docker.io", "registry-1.docker.io",
                "https://registry-1.docker.io")
    return (domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v2/")


def lookup(domain: str) -> Credential | None:
    for path in (stackd_config_path(), docker_config_path()):
        auths = _load(path).get("auths") or {}
        for key in _auth_keys(domain):
            entry = auths.get(key)
            if not entry:
                continue
            if entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except ValueError as exc:
                    raise RegistryAuthError(
                        f"the saved credentials for {domain} in {path} are not valid base64",
                        hint=f"run `stackd login {domain}` again",
                    ) from exc
                return Credential(user, password)
            if entry.get("username"):
                return Credential(entry["username"], entry.get("password", ""))
    return None


def save(domain: str, cred: Credential) -> Path:
    path = stackd_config_path()
    data = _load(path)
    key = DOCKER_HUB_AUTH_KEY if domain == "docker.io" else domain
    token = base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()
    data.setdefault("auths", {})[key] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.rename(tmp, path)
    return path


def remove(domain: str) -> bool:
    path = stackd_config_path()
    data = _load(path)
    key = DOCKER_HUB_AUTH_KEY if domain == "docker.io" else domain
    if key not in data.get("auths", {}):
        return False
    del data["auths"][key]
    path.write_text(json.dumps(data, indent=2))
    return True


def insecure_registries() -> set[str]:
    hosts = {h.strip() for h in os.environ.get("STACKD_INSECURE_REGISTRIES", "").split(",")
             if h.strip()}
    hosts.update(_load(stackd_config_path()).get("insecure-registries") or ())
    return hosts


def uses_plain_http(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    return host in _LOCAL_HOSTS or domain in insecure_registries() or host in insecure_registries()
