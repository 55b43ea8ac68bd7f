"""Compose, Kubernetes and Envoy agree with each other and with the services' settings."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.deployment import (
    CLUSTER_MODULES,
    DEPLOY,
    K8S,
    MODULES,
    OURS,
    compose,
    compose_env,
    containers,
    entrypoint_file_variables,
    envoy_listener_port,
    envoy_upstreams,
    interpolated,
    k8s_documents,
    k8s_objects,
    module_of,
    settings_env_names,
    unknown_env_names,
)

PYTHON_SERVICES = ["backtest", "wallets", "live", "front"]


def _compose_python_services() -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        name: (module_of(service["command"]), service)
        for name, service in compose()["services"].items()
        if name in PYTHON_SERVICES
    }


def _deployment_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["name"]: env for env in container.get("env", [])}


# --- every variable is a real setting ---------------------------------------------------------


def test_the_check_catches_a_misspelt_or_misplaced_variable() -> None:
    assert unknown_env_names("tapedeck_wallets", ["WALLETS_REDIS_URLL", "REDIS_URL"]) == [
        "WALLETS_REDIS_URLL"
    ]
    # A real setting of another service is still wrong here.
    assert unknown_env_names("tapedeck_backtest", ["REDIS_URL", "LIVE_WALLETS_ADDRESS"]) == [
        "LIVE_WALLETS_ADDRESS",
        "REDIS_URL",
    ]
    # The front service reads none of the services' stack-wide settings.
    assert unknown_env_names("tapedeck_gateway", ["TAPEDECK_DATA_DIR"]) == ["TAPEDECK_DATA_DIR"]
    assert unknown_env_names("tapedeck_live", ["DATABASE_URL_FILE", "LIVE_PORT_FILE"]) == [
        "LIVE_PORT_FILE"
    ]


def test_every_variable_set_in_compose_is_a_setting_of_that_service() -> None:
    services = _compose_python_services()
    assert set(services) == set(PYTHON_SERVICES)
    for name, (module, service) in services.items():
        env = compose_env(service)
        assert env, name
        assert unknown_env_names(module, list(env)) == [], f"compose service {name}"


def test_every_variable_set_in_kubernetes_is_a_setting_of_that_service() -> None:
    checked = set()
    for name, deployment in k8s_objects("Deployment").items():
        for container in containers(deployment):
            if "command" not in container:
                continue  # the gateway runs Envoy, not a Tapedeck process
            module = module_of(container["command"])
            env = list(_deployment_env(container))
            assert unknown_env_names(module, env) == [], f"Deployment {name}"
            checked.add(module)
    assert checked == set(MODULES)


def test_every_variable_the_service_image_sets_is_a_setting_of_some_process() -> None:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    names = [
        name
        for line in text.splitlines()
        if line.startswith("ENV ")
        for name in re.findall(r"(\w+)=", line)
        if OURS.match(name)
    ]
    assert "TAPEDECK_DATA_DIR" in names
    known = set().union(*(settings_env_names(cls) for cls in MODULES.values()))
    assert sorted(set(names) - known) == []


def test_the_entrypoint_reads_files_only_for_real_settings() -> None:
    known = set().union(*(settings_env_names(cls) for cls in MODULES.values()))
    variables = entrypoint_file_variables()
    assert "DATABASE_URL" in variables
    assert "TAPEDECK_SERVICE_TOKEN" in variables
    assert sorted(set(variables) - known) == []


# --- ports and health names -------------------------------------------------------------------


def test_envoy_upstreams_are_the_container_names_on_the_services_default_ports() -> None:
    upstreams = envoy_upstreams()
    assert set(upstreams) == set(CLUSTER_MODULES)
    for name, upstream in upstreams.items():
        assert upstream.host == name
        settings = MODULES[CLUSTER_MODULES[name]]
        assert settings.model_fields["port"].default == upstream.port, name
    assert upstreams["front"].health_service == ""


def test_compose_ports_addresses_and_health_checks_match_envoy() -> None:
    upstreams = envoy_upstreams()
    services = _compose_python_services()
    for name, (module, service) in services.items():
        upstream = upstreams[name]
        assert CLUSTER_MODULES[name] == module, name
        env = compose_env(service)
        prefix = "FRONT" if name == "front" else name.upper()
        assert env[f"{prefix}_PORT"] == str(upstream.port), name
        assert env[f"{prefix}_HOST"] == "0.0.0.0", name
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/app/bin/healthcheck.py"], name
        assert test[3:] == [f"127.0.0.1:{upstream.port}", upstream.health_service], name
    addresses = {n: f"{u.host}:{u.port}" for n, u in upstreams.items()}
    front = compose_env(services["front"][1])
    for name in ("backtest", "wallets", "live"):
        assert front[f"FRONT_{name.upper()}_ADDRESS"] == addresses[name]
    assert compose_env(services["live"][1])["LIVE_WALLETS_ADDRESS"] == addresses["wallets"]
    gateway = compose()["services"]["gateway"]
    assert [interpolated(p).rsplit(":", 1)[1] for p in gateway["ports"]] == [
        str(envoy_listener_port())
    ]


def test_kubernetes_services_ports_and_probes_match_envoy() -> None:
    upstreams = envoy_upstreams()
    services = k8s_objects("Service")
    deployments = k8s_objects("Deployment")
    for name, upstream in upstreams.items():
        service = services[upstream.host]
        # Headless: Envoy's STRICT_DNS sees every pod, not one virtual IP.
        assert service["spec"]["clusterIP"] == "None", name
        (port,) = service["spec"]["ports"]
        assert port["port"] == upstream.port, name
        (container,) = containers(deployments[name])
        assert module_of(container["command"]) == CLUSTER_MODULES[name]
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[port["targetPort"]] == upstream.port, name
        env = _deployment_env(container)
        prefix = "FRONT" if name == "front" else name.upper()
        assert env[f"{prefix}_PORT"]["value"] == str(upstream.port), name
        assert env[f"{prefix}_HOST"]["value"] == "0.0.0.0", name
        grpc_probes = [
            container[probe]["grpc"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")
            if "grpc" in container.get(probe, {})
        ]
        if name == "front":
            # Ready when it answers; health "" would couple it to every upstream.
            assert container["readinessProbe"]["tcpSocket"]["port"] == upstream.port
        else:
            assert "grpc" in container["readinessProbe"], name
        for probe in grpc_probes:
            assert probe == {"port": upstream.port, "service": upstream.health_service}, name
    addresses = {n: f"{u.host}:{u.port}" for n, u in upstreams.items()}
    (front,) = containers(deployments["front"])
    front_env = _deployment_env(front)
    for name in ("backtest", "wallets", "live"):
        assert front_env[f"FRONT_{name.upper()}_ADDRESS"]["value"] == addresses[name]
    (live,) = containers(deployments["live"])
    assert _deployment_env(live)["LIVE_WALLETS_ADDRESS"]["value"] == addresses["wallets"]
    (gateway,) = containers(deployments["gateway"])
    listener = envoy_listener_port()
    assert [p["containerPort"] for p in gateway["ports"]] == [listener]
    assert gateway["readinessProbe"]["tcpSocket"] == {"port": listener}
    assert [p["port"] for p in services["gateway"]["spec"]["ports"]] == [listener]


def test_services_select_their_deployments_pods() -> None:
    deployments = k8s_objects("Deployment")
    for name, service in k8s_objects("Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        selector = service["spec"]["selector"]
        assert selector.items() <= labels.items(), name
        assert deployments[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


# --- Kubernetes shape -------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {doc["metadata"].get("namespace", "tapedeck") for doc in k8s_documents()} == {"tapedeck"}
    assert list(k8s_objects("Namespace")) == ["tapedeck"]


@pytest.mark.parametrize("name", ["backtest", "wallets", "live", "front", "gateway"])
def test_deployment_runs_non_root_read_only_with_resources_and_probes(name: str) -> None:
    deployment = k8s_objects("Deployment")[name]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    mounts = {volume["name"] for volume in pod.get("volumes", [])}
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert "readinessProbe" in container
        assert "livenessProbe" in container
        assert {m["name"] for m in container.get("volumeMounts", [])} <= mounts
        # A read-only root still needs a writable /tmp.
        assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}


def test_wallets_and_live_run_several_replicas_and_backtest_shares_its_volume() -> None:
    deployments = k8s_objects("Deployment")
    assert deployments["wallets"]["spec"]["replicas"] >= 2
    assert deployments["live"]["spec"]["replicas"] >= 2
    (claim,) = k8s_objects("PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = deployments["backtest"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (container,) = pod["containers"]
    env = _deployment_env(container)
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert mount["mountPath"] == env["TAPEDECK_DATA_DIR"]["value"]
    assert env["BACKTEST_WORKERS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"


def test_kubernetes_secret_references_use_the_documented_keys() -> None:
    readme = (K8S / "README.md").read_text()
    keys = set()
    for deployment in k8s_objects("Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] == "tapedeck"
                    keys.add(ref["key"])
        for volume in pod.get("volumes", []):
            secret = volume.get("secret")
            if secret is not None and secret["secretName"] == "tapedeck":
                keys.update(item["key"] for item in secret["items"])
    assert keys == {"tokens.json", "service-token", "database-url", "redis-url"}
    for key in keys:
        assert f"`{key}`" in readme, key


def test_tokens_file_setting_points_into_the_mounted_secret() -> None:
    for name, deployment in k8s_objects("Deployment").items():
        for container in containers(deployment):
            env = _deployment_env(container)
            if "TAPEDECK_TOKENS_FILE" not in env:
                continue
            path = env["TAPEDECK_TOKENS_FILE"]["value"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            directory, _, file = path.rpartition("/")
            assert directory in mounts, name
            volume = next(
                v
                for v in deployment["spec"]["template"]["spec"]["volumes"]
                if v["name"] == mounts[directory]
            )
            assert {"key": "tokens.json", "path": file} in volume["secret"]["items"]


# --- compose shape ----------------------------------------------------------------------------


def test_compose_services_restart_and_have_health_checks() -> None:
    for name, service in compose()["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        image = interpolated(service["image"])
        assert ":" in image, name
        assert not image.endswith(":latest") or "build" in service, name


def test_compose_wires_postgres_redis_tokens_and_workers() -> None:
    services = compose()["services"]
    for name in ("backtest", "wallets", "live"):
        env = compose_env(services[name])
        assert env["TAPEDECK_ENV"] == "production", name
        assert env["TAPEDECK_TOKENS_FILE"] == "/run/secrets/tokens", name
        assert env["TAPEDECK_SERVICE_TOKEN_FILE"] == "/run/secrets/service_token", name
        assert env["DATABASE_URL_FILE"] == "/run/secrets/database_url", name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    wallets = compose_env(services["wallets"])
    assert wallets["REDIS_URL"] == "redis://redis:6379/0"
    assert services["wallets"]["depends_on"]["redis"]["condition"] == "service_healthy"
    backtest = services["backtest"]
    assert int(interpolated(compose_env(backtest)["BACKTEST_WORKERS"])) >= 1
    assert "backtest-data:/var/lib/tapedeck" in backtest["volumes"]
    assert compose_env(backtest)["TAPEDECK_DATA_DIR"] == "/var/lib/tapedeck"
    assert set(compose()["volumes"]) == {"postgres-data", "backtest-data", "prometheus-data"}


# --- the Ray cluster (BACKTEST_EXECUTOR=ray) ---------------------------------------------------


def test_the_ray_overlay_points_the_backtest_service_at_its_ray_cluster() -> None:
    overlay = yaml.safe_load((K8S / "ray" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["..", "raycluster.yaml"]
    (patch,) = overlay["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": "backtest"}
    env = {op["value"]["name"]: op["value"]["value"] for op in yaml.safe_load(patch["patch"])}
    assert unknown_env_names("tapedeck_backtest", list(env)) == []
    (cluster,) = yaml.safe_load_all((K8S / "ray" / "raycluster.yaml").read_text())
    assert env == {
        "BACKTEST_EXECUTOR": "ray",
        # KubeRay names the head's Service <cluster>-head-svc; the GCS listens on 6379.
        "BACKTEST_RAY_ADDRESS": f"{cluster['metadata']['name']}-head-svc:6379",
    }
    (claim,) = k8s_objects("PersistentVolumeClaim").values()
    backtest_image = containers(k8s_objects("Deployment")["backtest"])[0]["image"]
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the head runs no backtest
    for group in cluster["spec"]["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == backtest_image  # same Ray, same engine code as the driver
        data = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
        assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        mount = next(m for m in container["volumeMounts"] if m["name"] == data["name"])
        assert mount["mountPath"] == "/var/lib/tapedeck"


def test_compose_ray_nodes_share_the_backtest_image_and_volume() -> None:
    services = compose()["services"]
    backtest = services["backtest"]
    env = compose_env(backtest)
    assert interpolated(env["BACKTEST_EXECUTOR"]) == "local"  # Ray only when asked
    host, port = env["BACKTEST_RAY_ADDRESS"].split(":")
    assert host in services
    assert f"--port={port}" in services[host]["command"]
    for name in ("ray-head", "ray-worker"):
        node = services[name]
        assert node["profiles"] == ["ray"]
        assert node["image"] == backtest["image"]
        assert node["command"][:2] == ["ray", "start"]
        assert "--block" in node["command"]
        assert "backtest-data:/var/lib/tapedeck" in node["volumes"]
    assert f"--address={host}:{port}" in services["ray-worker"]["command"]
