"""Working with a Kubeflow Pipelines cluster: connect, upload, run, recurring runs.

Everything goes through `kfp.Client` (and the `kfp_server_api` models it is
built on). The cluster is chosen by environment variables:

    KFP_HOST                     the Pipelines API, e.g. http://localhost:8080 after
                                 `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`
    KFP_TOKEN                    a bearer token (e.g. `gcloud auth print-access-token`,
                                 or a Kubeflow session token)
    KF_PIPELINES_SA_TOKEN_PATH   a service-account token file, re-read on every request
                                 (projected tokens rotate); used when KFP_TOKEN is unset
    KFP_NAMESPACE                the profile namespace of a multi-user Kubeflow
    KFP_EXPERIMENT               experiment for runs and schedules (default: the pipeline name)

Conventions that make repeated commands safe:
- A pipeline is registered under its compiled name (`sp500`, `sp500-gpu`) and gets
  one pipeline version per project version (`components.images.VERSION`). The
  version's description carries the package's sha256, so uploading the same
  package again is a no-op and a *different* package under an existing version
  is refused (KFP versions are immutable: bump the project version).
- A recurring run is identified by its name. Creating it again with the same
  settings is a no-op; with other settings it is refused unless `--replace`.
  KFP freezes the pipeline version into a recurring run, which is why moving a
  schedule to a new version is `upload` + `schedule create --replace`.
- Cron expressions are checked here, before anything is sent, with the rules of
  the parser KFP uses (robfig/cron v1: six fields, seconds first).
"""

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from components.errors import InputError
from components.images import VERSION

ROOT = Path(__file__).resolve().parent.parent
COMPILED_DIR = ROOT / "compiled"
PROBE_TIMEOUT_S = 15
WAIT_TIMEOUT_S = 6 * 3600
WAIT_POLL_S = 10
PAGE_SIZE = 100
MAX_CONCURRENCY_LIMIT = 10  # the API server refuses more (and less than 1)
FINAL_RUN_STATES = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}


# --------------------------------------------------------------------------- connect

@dataclass
class Connection:
    client: "kfp.Client"  # noqa: F821 - imported lazily: kfp.Client is slow to import
    host: str
    namespace: str | None


def connect() -> Connection:
    """A `kfp.Client` for KFP_HOST, checked with one healthz request first.

    The check turns the usual mistakes into one line that says which: an
    unreachable host, a host that is not the Pipelines API, a rejected token.
    """
    host = os.environ.get("KFP_HOST", "").strip().rstrip("/")
    if not host:
        raise InputError("KFP_HOST is not set: export KFP_HOST=<Pipelines API URL>")
    if not host.startswith(("http://", "https://")):
        raise InputError(f"KFP_HOST '{host}' must start with http:// or https://")
    namespace = os.environ.get("KFP_NAMESPACE", "").strip() or None
    token, token_source = _bearer_token()
    healthz = _probe(host, token, token_source)
    if healthz.get("multi_user") and not namespace:
        raise InputError(f"KFP_HOST {host} is a multi-user Kubeflow: "
                         "set KFP_NAMESPACE to your profile namespace")

    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    auth: dict[str, object] = {}
    if os.environ.get("KFP_TOKEN"):
        auth["existing_token"] = token
    elif os.environ.get("KF_PIPELINES_SA_TOKEN_PATH"):
        auth["credentials"] = ServiceAccountTokenVolumeCredentials(
            os.environ["KF_PIPELINES_SA_TOKEN_PATH"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP >= 2.0.0-beta.2"
        client = kfp.Client(host=host, namespace=namespace or "kubeflow", **auth)
    return Connection(client=client, host=host, namespace=namespace)


def _bearer_token() -> tuple[str | None, str]:
    """The token to send and where it came from (for error messages)."""
    if os.environ.get("KFP_TOKEN"):
        return os.environ["KFP_TOKEN"].strip(), "KFP_TOKEN"
    path = os.environ.get("KF_PIPELINES_SA_TOKEN_PATH")
    if path:
        try:
            return Path(path).read_text().strip(), f"KF_PIPELINES_SA_TOKEN_PATH ({path})"
        except OSError as error:
            raise InputError(f"KF_PIPELINES_SA_TOKEN_PATH: cannot read token file {path}: "
                             f"{error.strerror}") from error
    return None, "no token (set KFP_TOKEN or KF_PIPELINES_SA_TOKEN_PATH)"


def _probe(host: str, token: str | None, token_source: str) -> dict:
    """GET /apis/v2beta1/healthz and explain any failure in one line."""
    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            body = response.read()
            final_url = response.geturl()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise InputError(f"KFP_HOST {host} rejected the token from {token_source} "
                             f"(HTTP {error.code} {error.reason})") from error
        raise InputError(f"KFP_HOST {host} did not answer as a Kubeflow Pipelines API: "
                         f"HTTP {error.code} {error.reason} on /apis/v2beta1/healthz") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise InputError(f"KFP_HOST {host} is unreachable: {reason}") from error
    try:
        healthz = json.loads(body)
        if not isinstance(healthz, dict):
            raise ValueError("not an object")
    except ValueError as error:
        # Kubeflow's gateway answers an unauthenticated request with a login page.
        where = f" (redirected to {final_url})" if final_url.rstrip("/") != request.full_url else ""
        raise InputError(f"KFP_HOST {host} answered with a web page, not the Pipelines API{where}: "
                         f"the token from {token_source} is missing or rejected") from error
    return healthz


@contextlib.contextmanager
def _api(what: str) -> Iterator[None]:
    """Turn an API error into one line that says what was being done."""
    from kfp_server_api.exceptions import ApiException

    try:
        yield
    except ApiException as error:
        raise InputError(f"{what}: Pipelines API answered HTTP {error.status} "
                         f"{_api_message(error)}") from error


def _api_message(error) -> str:
    try:
        body = json.loads(error.body)
        message = body.get("message") or body.get("error") or error.reason
    except (TypeError, ValueError, AttributeError):
        message = error.reason
    return str(message).splitlines()[0] if message else ""


def _equals(key: str, value: str) -> str:
    """A KFP list filter: `key` equals `value` (the JSON form kfp.Client uses)."""
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


# --------------------------------------------------------------------------- packages

def package_path(pipeline: str, gpu: bool = False) -> Path:
    """compiled/<pipeline>.yaml, or the -gpu variant; an error if it was never compiled."""
    name = pipeline if pipeline.endswith("-gpu") or not gpu else f"{pipeline}-gpu"
    path = COMPILED_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{_shown(path)} not found: run `make compile` first "
                         f"(or check the pipeline name '{pipeline}')")
    return path


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _pipeline_spec(package: Path) -> dict:
    documents = list(yaml.safe_load_all(package.read_text()))
    if not documents or "root" not in documents[0]:
        raise InputError(f"{package} is not a compiled KFP pipeline (no root)")
    return documents[0]


def pipeline_name(package: Path) -> str:
    return _pipeline_spec(package)["pipelineInfo"]["name"]


def declared_parameters(package: Path) -> dict[str, dict]:
    """The pipeline's parameters as the compiled root declares them (type, default)."""
    return _pipeline_spec(package)["root"].get("inputDefinitions", {}).get("parameters", {})


def convert_parameters(package: Path, params: dict[str, object]) -> dict[str, object]:
    """Parameters given as text (`key=value`) in the types the package declares, checked."""
    from pipelines import parameters

    return parameters.resolve(package.stem, declared_parameters(package), params)


# --------------------------------------------------------------------------- upload

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
    with _api(f"looking up pipeline '{name}'"):
        found = client.list_pipelines(filter=_equals("display_name", name),
                                      namespace=conn.namespace).pipelines or []
    if found:
        pipeline_id = found[0].pipeline_id
    else:
        with _api(f"creating pipeline '{name}'"):
            pipeline_id = client.pipelines.pipeline_service_create_pipeline(
                kfp_server_api.V2beta1Pipeline(
                    name=name, display_name=name, namespace=conn.namespace,
                    description=_pipeline_spec(package)["pipelineInfo"].get("description", "")),
            ).pipeline_id
        print(f"created pipeline '{name}' ({pipeline_id})", flush=True)

    with _api(f"looking up version {VERSION} of pipeline '{name}'"):
        versions = client.list_pipeline_versions(
            pipeline_id, filter=_equals("display_name", VERSION)).pipeline_versions or []
    if versions:
        existing = versions[0]
        if digest not in (existing.description or ""):
            raise InputError(
                f"pipeline '{name}' already has a version {VERSION} uploaded from a different "
                f"{_shown(package)}: KFP "
                "versions are immutable, so bump the project version in pyproject.toml")
        print(f"pipeline '{name}' version {VERSION} is already uploaded "
              f"({existing.pipeline_version_id}): nothing to do", flush=True)
        return PipelineVersion(pipeline_id, existing.pipeline_version_id, name, VERSION)

    with _api(f"uploading {package.name} as version {VERSION} of '{name}'"):
        created = client.upload_pipeline_version(
            str(package), pipeline_version_name=VERSION, pipeline_id=pipeline_id,
            description=description)
    print(f"uploaded pipeline '{name}' version {VERSION} ({created.pipeline_version_id})", flush=True)
    return PipelineVersion(pipeline_id, created.pipeline_version_id, name, VERSION)


def _experiment_id(conn: Connection, name: str) -> str:
    with _api(f"getting or creating experiment '{name}'"):
        return conn.client.create_experiment(name=name, namespace=conn.namespace).experiment_id


# --------------------------------------------------------------------------- run

def submit(conn: Connection, package: Path, params: dict[str, object], wait: bool,
           experiment: str | None = None, timeout_s: int = WAIT_TIMEOUT_S) -> int:
    """Start a run of `package` (uploading it if needed); 0 unless a waited-for run failed."""
    arguments = convert_parameters(package, params)
    version = upload(conn, package)
    experiment_id = _experiment_id(conn, experiment or _default_experiment(version.pipeline))
    run_name = f"{version.pipeline} {VERSION} {dt.datetime.now():%Y-%m-%d %H:%M:%S}"
    with _api(f"starting a run of '{version.pipeline}'"):
        run = conn.client.run_pipeline(
            experiment_id=experiment_id, job_name=run_name, params=arguments,
            pipeline_id=version.pipeline_id, version_id=version.version_id)
    print(f"started run '{run_name}' ({run.run_id}) with "
          f"{json.dumps(arguments, sort_keys=True) if arguments else 'default parameters'}",
          flush=True)
    if not wait:
        return 0
    finished = wait_for_run(conn, run.run_id, timeout_s)
    print(run_report(conn, finished), flush=True)
    return 0 if finished.state == "SUCCEEDED" else 1


def wait_for_run(conn: Connection, run_id: str, timeout_s: float):
    """Poll the run until it ends, printing each change of state."""
    # kfp.Client.wait_for_run_completion does not treat CANCELED as an end.
    deadline, state = time.monotonic() + timeout_s, None
    while True:
        with _api(f"reading run {run_id}"):
            run = conn.client.get_run(run_id)
        if run.state != state:
            state = run.state
            print(f"run {run_id}: {state}", flush=True)
        if state in FINAL_RUN_STATES:
            return run
        if time.monotonic() >= deadline:
            raise InputError(f"run {run_id} did not finish within {timeout_s:.0f}s; "
                             "it goes on in the cluster")
        time.sleep(WAIT_POLL_S)


def _default_experiment(pipeline: str) -> str:
    return os.environ.get("KFP_EXPERIMENT") or pipeline


def run_report(conn: Connection, run) -> str:
    """Final state, each task's state and duration, and where the metrics are."""
    lines = [f"run '{run.display_name}' finished: {run.state}"]
    tasks = (run.run_details.task_details if run.run_details else None) or []
    for task in sorted(tasks, key=lambda t: (t.start_time is None, t.start_time or 0)):
        took = ""
        if task.start_time and task.end_time:
            took = f" {(task.end_time - task.start_time).total_seconds():.0f}s"
        lines.append(f"  {task.display_name:<32} {task.state}{took}")
    if run.error and run.error.message:
        lines.append(f"  error: {run.error.message.splitlines()[0]}")
    # The v2beta1 API returns artifact ids only; metric values live in ML Metadata,
    # which the UI reads, so the run page is where they are shown.
    ui = os.environ.get("KF_PIPELINES_UI_ENDPOINT") or conn.host
    lines.append(f"metrics: {ui}/#/runs/details/{run.run_id} "
                 "(Metrics, confusion matrix and report of the evaluate step)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- recurring runs

CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# (name, low, high, names) per field, in KFP's order: seconds come first.
CRON_FIELDS = [
    ("seconds", 0, 59, {}),
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
    ("day-of-week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
]
GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def validate_cron(expression: str) -> str:
    """Check a KFP cron expression; return it normalised (single spaces).

    KFP parses with robfig/cron v1: `second minute hour day-of-month month
    day-of-week`, `*`/`?`, ranges `a-b`, steps `/n`, lists `a,b`, JAN-DEC and
    SUN-SAT (0-6; 7 is refused), or @yearly/@monthly/@weekly/@daily/@hourly/
    @every <duration>. It also takes 5 fields, reading them as second..month:
    a standard crontab line would then fire every hour, so 5 fields are refused
    here. A run more often than once a minute is refused too.
    """
    text = " ".join(expression.split())
    if not text:
        raise InputError("CRON is empty: give 6 fields, e.g. '0 0 6 * * *' (06:00 every day)")
    if text.startswith("@"):
        return _validate_descriptor(text)
    fields = text.split(" ")
    if len(fields) == 5:
        raise InputError(f"CRON '{text}' has 5 fields but KFP's cron has 6, seconds first "
                         f"(KFP would read it as second minute hour day month): "
                         f"did you mean '0 {text}'?")
    if len(fields) != 6:
        raise InputError(f"CRON '{text}' has {len(fields)} fields: KFP expects 6 "
                         "(second minute hour day-of-month month day-of-week)")
    for field, (label, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for part in filter(None, field.split(",")):
            problem = _cron_range_problem(part, low, high, names)
            if problem:
                raise InputError(f"CRON '{text}': {label} field '{field}': {problem}")
    if not fields[0].isdigit():
        raise InputError(f"CRON '{text}': seconds field '{fields[0]}' would start a run "
                         "more than once a minute; give a single second such as 0")
    return text


def _cron_range_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    range_and_step = part.split("/")
    if len(range_and_step) > 2:
        return f"too many '/' in '{part}'"
    bounds = range_and_step[0].split("-")
    if len(bounds) > 2:
        return f"too many '-' in '{part}'"

    def value(text: str) -> int | None:
        if text.lower() in names:
            return names[text.lower()]
        return int(text) if text.isdigit() else None

    if bounds[0] in ("*", "?"):
        if len(bounds) > 1:
            return f"'{part}' mixes '*' with a range"
        start, end = low, high
    else:
        start = value(bounds[0])
        end = value(bounds[-1])
        if start is None or end is None:
            return f"'{part}' is not a number{' or name' if names else ''}"
        if len(range_and_step) == 2 and len(bounds) == 1:
            end = high  # robfig: "N/step" means N-max/step
    if len(range_and_step) == 2 and (not range_and_step[1].isdigit() or int(range_and_step[1]) == 0):
        return f"step in '{part}' must be a positive integer"
    if start < low or end > high:
        return f"'{part}' is outside {low}-{high}"
    if start > end:
        return f"'{part}' starts after it ends"
    return None


def _validate_descriptor(text: str) -> str:
    if text in CRON_DESCRIPTORS:
        return text
    if text.startswith("@every "):
        duration = text[len("@every "):].strip()
        match = GO_DURATION.match(duration)
        if not match:
            raise InputError(f"CRON '{text}': '{duration}' is not a duration such as 1h30m")
        seconds = sum(float(number) * GO_UNIT_S[unit]
                      for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)",
                                                     duration))
        if seconds < 60:
            raise InputError(f"CRON '{text}' would start a run more than once a minute")
        return text
    raise InputError(f"CRON '{text}' is not a known descriptor: use one of "
                     f"{', '.join(sorted(CRON_DESCRIPTORS))} or '@every <duration>'")


def rfc3339(value: str, what: str) -> str:
    """An ISO 8601 time as RFC 3339 UTC; a time without a zone is taken as UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise InputError(f"{what} '{value}' is not an ISO 8601 time such as "
                         "2026-01-31T06:00:00Z") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        with _api("listing recurring runs"):
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
    experiment_id = _experiment_id(conn, request.experiment or _default_experiment(version.pipeline))
    with _api(f"creating recurring run '{request.name}'"):
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
        with _api(f"deleting the replaced recurring run {existing[0].recurring_run_id}"):
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
            with _api(f"reading pipeline version {key}"):
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
    with _api(f"{'resuming' if enabled else 'pausing'} recurring run '{name}'"):
        if enabled:
            conn.client.enable_recurring_run(run.recurring_run_id)
        else:
            conn.client.disable_recurring_run(run.recurring_run_id)
    return f"recurring run '{name}' ({run.recurring_run_id}) {'resumed' if enabled else 'paused'}"


def delete_schedule(conn: Connection, name: str) -> str:
    run = _one_schedule(conn, name)
    with _api(f"deleting recurring run '{name}'"):
        conn.client.delete_recurring_run(run.recurring_run_id)
    return f"deleted recurring run '{name}' ({run.recurring_run_id})"


# --------------------------------------------------------------------------- command line

def submit_run(pipeline_name: str, params: dict[str, str], wait: bool) -> int:
    """`run` with KFP_HOST set: submit compiled/<pipeline_name>.yaml to the cluster."""
    package = package_path(pipeline_name)
    convert_parameters(package, params)  # bad parameters fail before any connection
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
    create.set_defaults(handler=_schedule_create_command)
    actions.add_parser("list", help="list recurring runs").set_defaults(
        handler=lambda args: _print(schedule_table(connect())))
    for action, doing in (("pause", "pause"), ("resume", "resume"), ("delete", "delete")):
        parser = actions.add_parser(action, help=f"{doing} a recurring run by name")
        parser.add_argument("name")
        parser.set_defaults(handler=_SCHEDULE_ACTIONS[action])


def _print(text: str) -> int:
    print(text, flush=True)
    return 0


def _upload_command(args: argparse.Namespace) -> int:
    upload(connect(), package_path(args.pipeline, args.gpu))
    return 0


def _schedule_create_command(args: argparse.Namespace) -> int:
    from pipelines.cli import parse_assignments

    package = package_path(args.pipeline, args.gpu)
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
