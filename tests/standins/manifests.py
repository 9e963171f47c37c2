"""Kubernetes manifests in the tests: strict schema validation and the shipped deploy/ files."""

import functools
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
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


# --------------------------------------------------------------------------- custom resources

CRD_DIR = Path(__file__).resolve().parent / "crds"  # where each file comes from: crds/SOURCES.md


def _strict(schema):
    """A CRD's OpenAPI schema that refuses unknown fields, as `kubectl apply --validate=strict`
    and the API server's strict field validation do (without it they are pruned silently)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if "properties" in strict and "additionalProperties" not in strict and \
            not strict.get("x-kubernetes-preserve-unknown-fields"):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def crd_schema(crd_file: str, version: str) -> tuple[str, str, dict]:
    """(group, kind, strict OpenAPI v3 schema) of `version` in the gzipped CRD `crd_file`."""
    import gzip

    crd = yaml.load(gzip.decompress((CRD_DIR / crd_file).read_bytes()), Loader=yaml.CSafeLoader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return crd["spec"]["group"], crd["spec"]["names"]["kind"], _strict(served["schema"]["openAPIV3Schema"])


def validate_custom(manifest: dict, crd_file: str) -> None:
    """A custom resource against its CRD's schema (strict), its metadata against ObjectMeta.
    CEL rules (x-kubernetes-validations) are not evaluated."""
    group, version = manifest["apiVersion"].split("/")
    crd_group, kind, schema = crd_schema(crd_file, version)
    assert (group, manifest["kind"]) == (crd_group, kind), f"{manifest['kind']} is not a {kind} of {crd_group}"
    validate_part(manifest["metadata"], "objectmeta-meta-v1")
    jsonschema.validators.Draft7Validator(schema).validate({**manifest, "metadata": {}})


# Each custom kind the project writes, with the CRDs it must fit: Trainer v2.1 (Kubeflow 26.03)
# and v2.3 (the current release), KServe 0.16 (Kubeflow 26.03) and 0.20.
CRD_FILES = {
    "TrainJob": ("trainer-v2.1.0-trainjobs.yaml.gz", "trainer-v2.3.0-trainjobs.yaml.gz"),
    "TrainingRuntime": ("trainer-v2.1.0-trainingruntimes.yaml.gz", "trainer-v2.3.0-trainingruntimes.yaml.gz"),
    "ClusterTrainingRuntime": ("trainer-v2.1.0-clustertrainingruntimes.yaml.gz",
                               "trainer-v2.3.0-clustertrainingruntimes.yaml.gz"),
    "InferenceService": ("kserve-v0.16.0-inferenceservices.yaml.gz", "kserve-v0.20.0-inferenceservices.yaml.gz"),
}


def validate_any(manifest: dict) -> None:
    """A core object against the Kubernetes schemas, a custom resource against each of its CRDs."""
    for crd_file in CRD_FILES.get(manifest["kind"], ()):
        validate_custom(manifest, crd_file)
    if manifest["kind"] not in CRD_FILES:
        validate(manifest)
