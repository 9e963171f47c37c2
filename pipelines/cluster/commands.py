"""The cluster's command-line verbs: `upload` and `schedule {create,list,pause,resume,delete}`."""


import argparse
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
from pipelines.parameters import parse_assignments


def submit_run(pipeline_name: str, params: dict[str, str], wait: bool,
               compiled_dir: Path = DEFAULT_COMPILED_DIR) -> int:
    """`run` with KFP_HOST set: submit <compiled_dir>/<pipeline_name>.yaml to the cluster."""
    package = package_path(pipeline_name, compiled_dir=compiled_dir)
    check_images(package)  # like bad parameters, fails before any connection
    convert_parameters(package, params)
    return submit(connect(), package, params, wait)


def add_cluster_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `upload` and `schedule {create,list,pause,resume,delete}`.

    Each parser sets `handler`: a function of the parsed arguments returning
    the exit code.
    """
    upload_parser = subparsers.add_parser(
        "upload", help="register compiled/<pipeline>.yaml in the Pipelines UI (KFP_HOST)")
    upload_parser.add_argument("pipeline")
    upload_parser.add_argument("--gpu", action="store_true", help="upload the -gpu variant")
    add_compiled_dir_option(upload_parser)
    upload_parser.set_defaults(handler=_upload_command)

    schedule = subparsers.add_parser("schedule", help="recurring runs on the cluster (KFP_HOST)")
    actions = schedule.add_subparsers(dest="schedule_action", required=True)
    create = actions.add_parser("create", help="create a recurring run from the pipeline version")
    create.add_argument("pipeline")
    create.add_argument("params", nargs="*", metavar="key=value",
                        help="pipeline parameters (right after the pipeline name)")
    create.add_argument("--cron", required=True,
                        help="KFP cron, 6 fields with seconds first: '0 0 6 * * *' = 06:00 daily")
    create.add_argument("--name", help="recurring run name (default: the pipeline name)")
    create.add_argument("--gpu", action="store_true", help="schedule the -gpu variant")
    create.add_argument("--max-concurrency", type=int, default=1)
    create.add_argument("--catchup", action="store_true",
                        help="start the runs missed while paused (default: only the latest)")
    create.add_argument("--start", help="first possible run, ISO 8601 (UTC unless a zone is given)")
    create.add_argument("--end", help="last possible run, ISO 8601")
    create.add_argument("--experiment", help="experiment (default: KFP_EXPERIMENT or the pipeline)")
    create.add_argument("--replace", action="store_true",
                        help="replace an existing recurring run of the same name")
    add_compiled_dir_option(create)
    create.set_defaults(handler=_schedule_create_command)
    actions.add_parser("list", help="list recurring runs").set_defaults(
        handler=lambda args: _print(schedule_table(connect())))
    for action, doing in (("pause", "pause"), ("resume", "resume"), ("delete", "delete")):
        parser = actions.add_parser(action, help=f"{doing} a recurring run by name")
        parser.add_argument("name")
        parser.set_defaults(handler=_SCHEDULE_ACTIONS[action])


def add_compiled_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compiled-dir", type=Path, default=DEFAULT_COMPILED_DIR,
                        help="where the compiled packages are (default: ./compiled)")


def _print(text: str) -> int:
    print(text, flush=True)
    return 0


def _upload_command(args: argparse.Namespace) -> int:
    package = package_path(args.pipeline, args.gpu, args.compiled_dir)
    check_images(package)
    upload(connect(), package)
    return 0


def _schedule_create_command(args: argparse.Namespace) -> int:
    package = package_path(args.pipeline, args.gpu, args.compiled_dir)
    check_images(package)
    request = check_schedule(ScheduleRequest(
        name=args.name or pipeline_name(package), cron=args.cron,
        params=parse_assignments(args.params), max_concurrency=args.max_concurrency,
        catchup=args.catchup, start_time=args.start, end_time=args.end,
        experiment=args.experiment))
    convert_parameters(package, request.params)  # fail on bad parameters before connecting
    return _print(create_schedule(connect(), package, request, replace=args.replace))


_SCHEDULE_ACTIONS = {
    "pause": lambda args: _print(set_schedule_enabled(connect(), args.name, enabled=False)),
    "resume": lambda args: _print(set_schedule_enabled(connect(), args.name, enabled=True)),
    "delete": lambda args: _print(delete_schedule(connect(), args.name)),
}
