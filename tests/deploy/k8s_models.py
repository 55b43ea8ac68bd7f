"""Round-trip Kubernetes manifests through the official client's API models; print what is lost.

Run with an interpreter that has the `kubernetes` package (it is not in the project's lock):
    python tests/deploy/k8s_models.py deploy/k8s/*.yaml
A misspelt or misplaced field is dropped by the model and reported; a missing required field
fails the model's own validation. Exit 1 on any problem.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient  # type: ignore[import-not-found]

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
}


def lost(original: Any, round_trip: Any, path: str = "") -> list[str]:
    """Differences between a manifest and its round trip through the model."""
    if isinstance(original, dict):
        if not isinstance(round_trip, dict):
            return [f"{path}: became {round_trip!r}"]
        problems = []
        for key, value in original.items():
            if key not in round_trip:
                problems.append(f"{path}.{key}: unknown field")
            else:
                problems.extend(lost(value, round_trip[key], f"{path}.{key}"))
        return problems
    if isinstance(original, list):
        if not isinstance(round_trip, list) or len(original) != len(round_trip):
            return [f"{path}: list changed"]
        return [
            problem
            for index, (a, b) in enumerate(zip(original, round_trip, strict=True))
            for problem in lost(a, b, f"{path}[{index}]")
        ]
    if str(original) != str(round_trip):
        return [f"{path}: {original!r} became {round_trip!r}"]
    return []


# KubeRay's RayCluster (ray.io/v1) is a custom resource the client has no model for: its own
# fields are checked by name, and each pod template round-trips through V1PodTemplateSpec.
RAY_CLUSTER_SPEC = {"rayVersion", "enableInTreeAutoscaling", "headGroupSpec", "workerGroupSpecs"}
RAY_HEAD_GROUP = {"rayStartParams", "serviceType", "template"}
RAY_WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams"}


def ray_cluster_problems(client: Any, document: dict[str, Any]) -> list[str]:
    """Problems in a RayCluster: unknown fields, pod templates the core models reject."""
    spec = document.get("spec", {})
    groups = [("headGroupSpec", spec.get("headGroupSpec", {}), RAY_HEAD_GROUP)]
    for index, group in enumerate(spec.get("workerGroupSpecs", [])):
        groups.append((f"workerGroupSpecs[{index}]", group, RAY_WORKER_GROUP | {"template"}))
    problems = [f".spec.{key}: unknown field" for key in set(spec) - RAY_CLUSTER_SPEC]
    for where, group, known in groups:
        problems += [f".spec.{where}.{key}: unknown field" for key in set(group) - known]
        problems += [
            f".spec.{where}.rayStartParams.{key}: not a string"
            for key, value in group.get("rayStartParams", {}).items()
            if not isinstance(value, str)
        ]
        template = group.get("template")
        if template is None:
            problems.append(f".spec.{where}.template: missing")
            continue
        instance = client._ApiClient__deserialize(template, "V1PodTemplateSpec")
        round_trip = client.sanitize_for_serialization(instance)
        problems += lost(template, round_trip, f".spec.{where}.template")
    return problems


def check(paths: list[str]) -> list[str]:
    """Every problem in the manifests at `paths`."""
    client = ApiClient()
    problems = []
    for name in paths:
        for document in yaml.safe_load_all(Path(name).read_text()):
            if not document:
                continue
            where = f"{name} {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            if (document.get("apiVersion"), document.get("kind")) == ("ray.io/v1", "RayCluster"):
                problems.extend(f"{where}{p}" for p in ray_cluster_problems(client, document))
                continue
            model = MODELS.get((document.get("apiVersion"), document.get("kind")))
            if model is None:
                problems.append(f"{where}: no model for {document.get('apiVersion')}")
                continue
            try:
                # The client's own deserializer (what it uses for API responses).
                instance = client._ApiClient__deserialize(document, model)
            except (ValueError, TypeError) as error:
                problems.append(f"{where}: {error}")
                continue
            round_trip = client.sanitize_for_serialization(instance)
            problems.extend(f"{where}{problem}" for problem in lost(document, round_trip))
    return problems


if __name__ == "__main__":
    found = check(sys.argv[1:])
    print("\n".join(found) or "ok")
    sys.exit(1 if found else 0)
