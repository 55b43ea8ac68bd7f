"""What the deployment tests read: deploy/'s files, the envoy upstreams, each process's settings."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic_settings import BaseSettings

from tapedeck_backtest import storage
from tapedeck_backtest.settings import BacktestSettings
from tapedeck_common.entrypoint import setting_env_names
from tapedeck_gateway.settings import FrontSettings
from tapedeck_live.settings import LiveSettings
from tapedeck_wallets.settings import WalletsSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"

# The module each process runs, and its settings class.
MODULES: dict[str, type[BaseSettings]] = {
    "tapedeck_backtest": BacktestSettings,
    "tapedeck_wallets": WalletsSettings,
    "tapedeck_live": LiveSettings,
    "tapedeck_gateway": FrontSettings,
}
# Envoy cluster -> the module behind it.
CLUSTER_MODULES = {
    "backtest": "tapedeck_backtest",
    "wallets": "tapedeck_wallets",
    "live": "tapedeck_live",
    "front": "tapedeck_gateway",
}
# Variables a Tapedeck process might read; anything else in an environment (PATH, ...) is not ours.
OURS = re.compile(r"^(TAPEDECK_|BACKTEST_|WALLETS_|LIVE_|FRONT_|DATABASE_URL|REDIS_URL)")


def render_script() -> ModuleType:
    """Import scripts/render_deploy_envoy.py (scripts/ is not a package)."""
    path = ROOT / "scripts" / "render_deploy_envoy.py"
    spec = importlib.util.spec_from_file_location("render_deploy_envoy", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable that sets a field of `cls`."""
    names: set[str] = set()
    for field in cls.model_fields:
        names.update(setting_env_names(cls, field).split(" or "))
    return names


@cache
def entrypoint_file_variables() -> tuple[str, ...]:
    """The variables docker-entrypoint.sh also accepts as VAR_FILE."""
    text = ENTRYPOINT.read_text()
    match = re.search(r"for name in (.*?); do", text, re.DOTALL)
    assert match is not None, "docker-entrypoint.sh has no `for name in ...; do` list"
    return tuple(match.group(1).replace("\\", " ").split())


def accepted_env_names(cls: type[BaseSettings]) -> set[str]:
    """Names a deployment may set for a process: its settings, VAR_FILE for file secrets, and
    for the backtest service the AWS variables that reach its object store (storage.py)."""
    names = settings_env_names(cls)
    files = {f"{name}_FILE" for name in entrypoint_file_variables() if name in names}
    library = set(storage.ENVIRONMENT) if cls is BacktestSettings else set()
    return names | files | library


def unknown_env_names(module: str, names: list[str]) -> list[str]:
    """The names that no setting of `module`'s process reads (typos, settings that do not exist)."""
    accepted = accepted_env_names(MODULES[module])
    return sorted(name for name in names if name not in accepted)


def module_of(command: list[str] | None) -> str:
    """Return the `python -m <module>` a container runs."""
    assert command is not None
    assert command[:2] == ["python", "-m"], command
    assert command[2] in MODULES, command
    return command[2]


@cache
def compose() -> dict[str, Any]:
    """deploy/compose.yaml, parsed (YAML merge keys resolved)."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict (both the mapping and the list forms)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def interpolated(value: str) -> str:
    """Resolve compose's ${VAR:-default} / ${VAR-default} to their defaults."""
    return re.sub(r"\$\{[A-Z_]+:?-([^}]*)\}", r"\1", value)


@cache
def k8s_documents() -> tuple[dict[str, Any], ...]:
    """Every Kubernetes object under deploy/k8s."""
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(documents)


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind, by name."""
    return {doc["metadata"]["name"]: doc for doc in k8s_documents() if doc["kind"] == kind}


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """A Deployment's containers."""
    result: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return result


@dataclass(frozen=True)
class Upstream:
    """One Envoy cluster as deploy/envoy.yaml has it."""

    name: str
    host: str
    port: int
    health_service: str


@cache
def envoy() -> dict[str, Any]:
    """deploy/envoy.yaml, parsed."""
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "envoy.yaml").read_text())
    return document


def envoy_upstreams() -> dict[str, Upstream]:
    """Envoy's clusters by name."""
    result = {}
    for cluster in envoy()["static_resources"]["clusters"]:
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        address = endpoint["address"]["socket_address"]
        (check,) = cluster["health_checks"]
        result[cluster["name"]] = Upstream(
            name=cluster["name"],
            host=address["address"],
            port=address["port_value"],
            health_service=check["grpc_health_check"]["service_name"],
        )
    return result


def envoy_listener_port() -> int:
    """The port Envoy serves everything on."""
    (listener,) = envoy()["static_resources"]["listeners"]
    port: int = listener["address"]["socket_address"]["port_value"]
    return port
