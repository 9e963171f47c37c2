"""What the cluster's command-line verbs do (`run` with KFP_HOST, `upload`, `schedule ...`), from plain values.

Their arguments are in pipelines/cli (run.py, upload.py, schedule.py).
"""

from dataclasses import replace
from pathlib import Path

from pipelines.cluster.connection import connect
from pipelines.cluster.packages import (
    DEFAULT_COMPILED_DIR,
    check_images,
    convert_parameters,
    package_path,
    pipeline_name,
)
from pipelines.cluster.runs import submit
from pipelines.cluster.schedules import (
    ScheduleRequest,
    check_schedule,
    create_schedule,
    delete_schedule,
    schedule_table,
    set_schedule_enabled,
)
from pipelines.cluster.upload import upload


def submit_run(pipeline_name: str, params: dict[str, str], wait: bool,
               compiled_dir: Path = DEFAULT_COMPILED_DIR) -> int:
    """`run` with KFP_HOST set: submit <compiled_dir>/<pipeline_name>.yaml to the cluster."""
    package = package_path(pipeline_name, compiled_dir=compiled_dir)
    check_images(package)  # like bad parameters, fails before any connection
    convert_parameters(package, params)
    return submit(connect(), package, params, wait)


def upload_package(pipeline: str, gpu: bool, compiled_dir: Path) -> None:
    """`upload`: register the compiled package (or its -gpu variant) as a pipeline version."""
    package = package_path(pipeline, gpu, compiled_dir)
    check_images(package)
    upload(connect(), package)


def schedule_package(pipeline: str, gpu: bool, compiled_dir: Path, request: ScheduleRequest,
                     replace_existing: bool) -> str:
    """`schedule create`: a recurring run of the compiled package; an empty `request.name` is the
    package's pipeline name. Everything is checked before connecting."""
    package = package_path(pipeline, gpu, compiled_dir)
    check_images(package)
    request = check_schedule(replace(request, name=request.name or pipeline_name(package)))
    convert_parameters(package, request.params)
    return create_schedule(connect(), package, request, replace=replace_existing)


def list_schedules() -> str:
    """`schedule list`: a table of the recurring runs."""
    return schedule_table(connect())


def change_schedule(action: str, name: str) -> str:
    """`schedule pause|resume|delete NAME`."""
    if action == "delete":
        return delete_schedule(connect(), name)
    return set_schedule_enabled(connect(), name, enabled=action == "resume")
