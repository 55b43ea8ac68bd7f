"""Render gateway/envoy.yaml for a given set of ports, addresses and page file."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def render(
    template: Path,
    *,
    listen: tuple[str, int],
    admin: tuple[str, int],
    upstreams: Mapping[str, tuple[str, int]],
    index_file: Path | str,
    health_check_seconds: int | None = None,
) -> dict[str, Any]:
    """Return the Envoy bootstrap with the listener, admin, upstream addresses and page replaced.

    `health_check_seconds` replaces the template's interval of Envoy's checks of each upstream.
    """
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    config["admin"]["address"]["socket_address"] = {"address": admin[0], "port_value": admin[1]}
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {"address": listen[0], "port_value": listen[1]}
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    for route in manager["route_config"]["virtual_hosts"][0]["routes"]:
        body = route.get("direct_response", {}).get("body", {})
        if "filename" in body:
            body["filename"] = str(index_file)
    for cluster in config["static_resources"]["clusters"]:
        host, port = upstreams[cluster["name"]]
        # Container and Kubernetes deployments name their upstreams; resolve those by DNS.
        cluster["type"] = "STATIC" if _is_ip(host) else "STRICT_DNS"
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
        if health_check_seconds is not None:
            for check in cluster.get("health_checks", []):
                check["interval"] = check["no_traffic_interval"] = f"{health_check_seconds}s"
    return config


def write(config: Mapping[str, Any], path: Path) -> None:
    """Write a rendered configuration as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
