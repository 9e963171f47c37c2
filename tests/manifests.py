"""Kubernetes manifests in the tests: strict schema validation and the shipped deploy/ files."""

from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[1]
DEPLOY_FILES = sorted((REPO / "deploy").glob("*.yaml"))
K8S = kubernetes_validate.latest_version()


def validate(manifest: dict) -> None:
    """Strict schema validation: unknown or misspelled fields fail too."""
    kubernetes_validate.validate(manifest, K8S, strict=True)


def validate_part(value: dict, schema: str) -> None:
    """Validate part of an object (e.g. a custom resource's metadata) against one bundled schema."""
    from kubernetes_validate import utils

    folder = f"kubernetes-json-schema/v{K8S}-local-strict"
    contents = utils.schema_contents(f"{folder}/{schema}.json", K8S)
    registry = Resource.from_contents(utils.schema_contents(f"{folder}/_definitions.json", K8S)) @ (
        Resource.from_contents(contents) @ Registry())
    jsonschema.validators.Draft202012Validator(contents, registry=registry).validate(value)


def shipped() -> list[dict]:
    """Every document of the deploy/ manifests."""
    return [doc for path in DEPLOY_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def role_rules(name: str = "kfp-ml-deployer") -> list[dict]:
    """The rules of the shipped Role `name`."""
    (role,) = [doc for doc in shipped() if doc["kind"] == "Role" and doc["metadata"]["name"] == name]
    return role["rules"]
