"""Recurring runs on the cluster at KFP_HOST: `schedule {create,list,pause,resume,delete}` (pipelines.cluster)."""

import argparse

from pipelines.cli.options import add_compiled_dir_option
from pipelines.parameters import parse_assignments

HELP = "recurring runs on the cluster (KFP_HOST)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="schedule_action", required=True)
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
    actions.add_parser("list", help="list recurring runs")
    for action in ("pause", "resume", "delete"):
        actions.add_parser(action, help=f"{action} a recurring run by name").add_argument("name")


def run(args: argparse.Namespace) -> int:
    from pipelines.cluster import commands  # kfp's client

    if args.schedule_action == "create":
        from pipelines.cluster.schedules import ScheduleRequest

        request = ScheduleRequest(  # no --name: named after the package's pipeline
            name=args.name or "", cron=args.cron, params=parse_assignments(args.params),
            max_concurrency=args.max_concurrency, catchup=args.catchup, start_time=args.start,
            end_time=args.end, experiment=args.experiment)
        text = commands.schedule_package(args.pipeline, args.gpu, args.compiled_dir, request,
                                         replace_existing=args.replace)
    elif args.schedule_action == "list":
        text = commands.list_schedules()
    else:
        text = commands.change_schedule(args.schedule_action, args.name)
    print(text, flush=True)
    return 0
