"""Register a compiled package as a pipeline version (idempotent, immutable versions)."""


import hashlib
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import InputError
from components.common.images import VERSION
from pipelines.cluster.connection import Connection, api_call, equals_filter
from pipelines.cluster.packages import pipeline_name, pipeline_spec, shown_path


@dataclass
class PipelineVersion:
    pipeline_id: str
    version_id: str
    pipeline: str
    version: str


def upload(conn: Connection, package: Path) -> PipelineVersion:
    """Register `package` as version VERSION of its pipeline; a no-op when it is there."""
    import kfp_server_api

    name = pipeline_name(package)
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    description = f"kfp-ml-pipelines {VERSION}, package sha256:{digest}"
    client = conn.client
    with api_call(f"looking up pipeline '{name}'"):
        found = client.list_pipelines(filter=equals_filter("display_name", name),
                                      namespace=conn.namespace).pipelines or []
    if found:
        pipeline_id = found[0].pipeline_id
    else:
        with api_call(f"creating pipeline '{name}'"):
            pipeline_id = client.pipelines.pipeline_service_create_pipeline(
                kfp_server_api.V2beta1Pipeline(
                    name=name, display_name=name, namespace=conn.namespace,
                    description=pipeline_spec(package)["pipelineInfo"].get("description", "")),
            ).pipeline_id
        print(f"created pipeline '{name}' ({pipeline_id})", flush=True)

    with api_call(f"looking up version {VERSION} of pipeline '{name}'"):
        versions = client.list_pipeline_versions(
            pipeline_id, filter=equals_filter("display_name", VERSION)).pipeline_versions or []
    if versions:
        existing = versions[0]
        if digest not in (existing.description or ""):
            raise InputError(
                f"pipeline '{name}' already has a version {VERSION} uploaded from a different "
                f"{shown_path(package)}: KFP "
                "versions are immutable, so bump the project version in pyproject.toml")
        print(f"pipeline '{name}' version {VERSION} is already uploaded "
              f"({existing.pipeline_version_id}): nothing to do", flush=True)
        return PipelineVersion(pipeline_id, existing.pipeline_version_id, name, VERSION)

    with api_call(f"uploading {package.name} as version {VERSION} of '{name}'"):
        created = client.upload_pipeline_version(
            str(package), pipeline_version_name=VERSION, pipeline_id=pipeline_id,
            description=description)
    print(f"uploaded pipeline '{name}' version {VERSION} ({created.pipeline_version_id})", flush=True)
    return PipelineVersion(pipeline_id, created.pipeline_version_id, name, VERSION)


def get_or_create_experiment(conn: Connection, name: str) -> str:
    with api_call(f"getting or creating experiment '{name}'"):
        return conn.client.create_experiment(name=name, namespace=conn.namespace).experiment_id


