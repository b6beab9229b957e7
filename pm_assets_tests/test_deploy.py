"""The shipped deployment files load and agree with each other (this machine has no Docker daemon to run them:
README, "Scaling out").

- ``deploy/postgres/dagster.yaml`` passes Dagster's own instance schema, every class it names imports, and every
  environment variable it reads is set by the compose file;
- ``deploy/docker/workspace.yaml`` passes Dagster's workspace schema and points at the compose file's code service;
- ``deploy/docker-compose.yaml``: the services a deployment needs, each Dagster process built from
  ``deploy/Dockerfile`` with the same settings, the webserver bound to 127.0.0.1, stores on the Azurite service,
  the instance on the PostgreSQL service; every file the Dockerfile copies exists.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def _env_vars(node) -> set[str]:
    """Every ``{env: NAME}`` in a Dagster config."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(_env_vars(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_env_vars(v) for v in node))
    return set()


def _classes(node):
    if isinstance(node, dict):
        if "module" in node and "class" in node:
            yield node["module"], node["class"]
        for value in node.values():
            yield from _classes(value)


def test_the_postgres_instance_config_passes_dagsters_schema(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    env = _compose()["x-pm-env"]
    config_path = DEPLOY / "postgres" / "dagster.yaml"
    raw = yaml.safe_load(config_path.read_text())
    needed = _env_vars(raw)
    assert needed == {"PM_PG_HOST", "PM_PG_PORT", "PM_PG_USER", "PM_PG_PASSWORD", "PM_PG_DB"}
    assert needed <= set(env), needed - set(env)  # the compose file sets every one
    for key in needed:
        monkeypatch.setenv(key, str(env[key]))
    config, _ = dagster_instance_config(str(config_path.parent))
    assert config["run_storage"]["class"] == "PooledPostgresRunStorage"
    assert config["run_storage"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_retries"]["enabled"] and config["run_monitoring"]["enabled"]
    for module, name in _classes(raw):
        assert hasattr(importlib.import_module(module), name), (module, name)


def test_the_workspace_points_at_the_code_service():
    from dagster._core.workspace.config_schema import ensure_workspace_config

    workspace = yaml.safe_load((DEPLOY / "docker" / "workspace.yaml").read_text())
    ensure_workspace_config(workspace, str(DEPLOY / "docker"))  # raises on a schema error
    (entry,) = workspace["load_from"]
    code = _compose()["services"]["code"]["command"]
    assert entry["grpc_server"]["host"] == "code"
    assert str(entry["grpc_server"]["port"]) == code[code.index("-p") + 1]
    assert entry["grpc_server"]["location_name"] == code[code.index("--location-name") + 1]


def test_the_compose_file_wires_the_deployment():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "azurite", "storage-init", "code", "webserver", "daemon"}
    env = compose["x-pm-env"]
    dagster = ("storage-init", "code", "webserver", "daemon")
    for name in dagster:  # one image, one set of settings
        assert services[name]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert services[name]["environment"] == env, name
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]  # the UI is not open to the network
    assert env["PM_PG_HOST"] == "postgres" and services["postgres"]["environment"]["POSTGRES_DB"] == env["PM_PG_DB"]
    assert services["postgres"]["environment"]["POSTGRES_USER"] == env["PM_PG_USER"]
    assert "BlobEndpoint=http://azurite:10000/" in env["AZURE_STORAGE_CONNECTION_STRING"]
    assert "--blobPort 10000" in services["azurite"]["command"]
    container = env["PM_STORE_URL"].removeprefix("az://")
    assert f"'{container}'" in services["storage-init"]["command"][-1]  # the container the stores use is created
    assert services["code"]["depends_on"]["storage-init"] == {"condition": "service_completed_successfully"}
    assert int(env["PM_BACKFILL_CHUNK_DAYS"]) > 0  # a cluster backfills in chunks


def test_every_file_the_dockerfile_copies_exists():
    copies = re.findall(r"^COPY (.+)$", (DEPLOY / "Dockerfile").read_text(), flags=re.M)
    assert copies
    for line in copies:
        *sources, _ = line.split()
        for source in sources:
            assert (REPO / source).exists(), source
