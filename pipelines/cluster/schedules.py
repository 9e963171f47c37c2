"""Recurring runs: create (idempotent, --replace), list, pause, resume, delete."""


import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import InputError
from pipelines.cluster.connection import Connection, api_call
from pipelines.cluster.cron import rfc3339, validate_cron
from pipelines.cluster.packages import convert_parameters
from pipelines.cluster.runs import default_experiment
from pipelines.cluster.upload import PipelineVersion, get_or_create_experiment, upload

PAGE_SIZE = 100
MAX_CONCURRENCY_LIMIT = 10  # the API server refuses more (and less than 1)


@dataclass
class ScheduleRequest:
    name: str
    cron: str
    params: dict[str, object]
    max_concurrency: int = 1
    catchup: bool = False
    start_time: str | None = None
    end_time: str | None = None
    experiment: str | None = None


def check_schedule(request: ScheduleRequest) -> ScheduleRequest:
    """Everything about a schedule that can be wrong before the cluster is asked."""
    if not request.name.strip():
        raise InputError("schedule name is empty")
    request.cron = validate_cron(request.cron)
    if not 1 <= request.max_concurrency <= MAX_CONCURRENCY_LIMIT:
        raise InputError(f"max concurrency {request.max_concurrency} must be between 1 and "
                         f"{MAX_CONCURRENCY_LIMIT}")
    if request.start_time:
        request.start_time = rfc3339(request.start_time, "start time")
    if request.end_time:
        request.end_time = rfc3339(request.end_time, "end time")
        if request.end_time <= dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"):
            raise InputError(f"end time {request.end_time} is in the past")
    if request.start_time and request.end_time and request.end_time <= request.start_time:
        raise InputError(f"end time {request.end_time} is not after start time {request.start_time}")
    return request


def find_schedules(conn: Connection, name: str | None = None) -> list:
    """Recurring runs (all pages), those named `name` only when given."""
    found, token = [], ""
    while True:
        with api_call("listing recurring runs"):
            page = conn.client.list_recurring_runs(page_token=token, page_size=PAGE_SIZE,
                                                   namespace=conn.namespace)
        found += [r for r in page.recurring_runs or [] if name is None or r.display_name == name]
        token = page.next_page_token
        if not token:
            return found


def _one_schedule(conn: Connection, name: str):
    found = find_schedules(conn, name)
    if not found:
        raise InputError(f"no recurring run named '{name}' (see `schedule list`)")
    if len(found) > 1:
        ids = ", ".join(r.recurring_run_id for r in found)
        raise InputError(f"{len(found)} recurring runs are named '{name}' ({ids}): "
                         "delete the extra ones in the Pipelines UI")
    return found[0]


def _same_settings(existing, version: PipelineVersion, request: ScheduleRequest) -> bool:
    cron = existing.trigger.cron_schedule if existing.trigger else None
    reference = existing.pipeline_version_reference
    return (reference is not None and reference.pipeline_version_id == version.version_id
            and cron is not None and cron.cron == request.cron
            and _as_time(cron.start_time) == _as_time(request.start_time)
            and _as_time(cron.end_time) == _as_time(request.end_time)
            and int(existing.max_concurrency or 1) == request.max_concurrency
            and bool(existing.no_catchup) == (not request.catchup)
            and _same_values((existing.runtime_config.parameters if existing.runtime_config
                              else None) or {}, request.params))


def _as_time(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _same_values(stored: dict, wanted: dict) -> bool:
    # Parameters go through protobuf Struct on the server: integers come back as floats.
    def normal(value):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else value
    return {k: normal(v) for k, v in stored.items()} == {k: normal(v) for k, v in wanted.items()}


def create_schedule(conn: Connection, package: Path, request: ScheduleRequest,
                    replace: bool = False) -> str:
    """Create the recurring run `request.name` from the package's version VERSION."""
    request.params = convert_parameters(package, request.params)
    version = upload(conn, package)
    existing = find_schedules(conn, request.name)
    if len(existing) > 1:
        _one_schedule(conn, request.name)  # explains the duplicates
    if existing and _same_settings(existing[0], version, request):
        return (f"recurring run '{request.name}' already exists with these settings "
                f"({existing[0].recurring_run_id}): nothing to do")
    if existing and not replace:
        old = existing[0]
        raise InputError(
            f"recurring run '{request.name}' already exists ({old.recurring_run_id}, "
            f"cron '{old.trigger.cron_schedule.cron if old.trigger and old.trigger.cron_schedule else '?'}') "
            "with other settings or another pipeline version: pass --replace (REPLACE=1) to "
            "replace it, or choose another --name")
    experiment_id = get_or_create_experiment(conn, request.experiment or default_experiment(version.pipeline))
    with api_call(f"creating recurring run '{request.name}'"):
        created = conn.client.create_recurring_run(
            experiment_id=experiment_id, job_name=request.name,
            description=f"{version.pipeline} {version.version} on cron '{request.cron}'",
            start_time=request.start_time, end_time=request.end_time,
            cron_expression=request.cron, max_concurrency=request.max_concurrency,
            no_catchup=not request.catchup, params=request.params,
            pipeline_id=version.pipeline_id, version_id=version.version_id, enabled=True)
    summary = (f"created recurring run '{request.name}' ({created.recurring_run_id}): "
               f"{version.pipeline} {version.version}, cron '{request.cron}', "
               f"max concurrency {request.max_concurrency}, "
               f"{'catch-up' if request.catchup else 'no catch-up'}")
    if existing:
        # Created first, deleted second: a failure in between leaves the old
        # schedule running rather than none.
        with api_call(f"deleting the replaced recurring run {existing[0].recurring_run_id}"):
            conn.client.delete_recurring_run(existing[0].recurring_run_id)
        summary += f"; replaced {existing[0].recurring_run_id}"
    return summary


def schedule_table(conn: Connection) -> str:
    schedules = find_schedules(conn)
    if not schedules:
        return "no recurring runs"
    version_names: dict[str, str] = {}

    def version_name(reference) -> str:
        if reference is None:
            return "(inline spec)"
        key = reference.pipeline_version_id
        if key not in version_names:
            with api_call(f"reading pipeline version {key}"):
                got = conn.client.get_pipeline_version(reference.pipeline_id, key)
                pipeline = conn.client.get_pipeline(reference.pipeline_id).display_name
            version_names[key] = f"{pipeline} {got.display_name}"
        return version_names[key]

    rows = [("name", "state", "schedule", "pipeline version", "max", "catch-up", "id")]
    for run in sorted(schedules, key=lambda r: r.display_name):
        trigger = run.trigger
        when = (trigger.cron_schedule.cron if trigger and trigger.cron_schedule
                else f"every {trigger.periodic_schedule.interval_second}s" if trigger else "?")
        rows.append((run.display_name, "enabled" if run.mode == "ENABLE" else "paused", when,
                     version_name(run.pipeline_version_reference), str(run.max_concurrency),
                     "no" if run.no_catchup else "yes", run.recurring_run_id))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def set_schedule_enabled(conn: Connection, name: str, enabled: bool) -> str:
    run = _one_schedule(conn, name)
    if (run.mode == "ENABLE") == enabled:
        return f"recurring run '{name}' is already {'enabled' if enabled else 'paused'}"
    with api_call(f"{'resuming' if enabled else 'pausing'} recurring run '{name}'"):
        if enabled:
            conn.client.enable_recurring_run(run.recurring_run_id)
        else:
            conn.client.disable_recurring_run(run.recurring_run_id)
    return f"recurring run '{name}' ({run.recurring_run_id}) {'resumed' if enabled else 'paused'}"


def delete_schedule(conn: Connection, name: str) -> str:
    run = _one_schedule(conn, name)
    with api_call(f"deleting recurring run '{name}'"):
        conn.client.delete_recurring_run(run.recurring_run_id)
    return f"deleted recurring run '{name}' ({run.recurring_run_id})"


